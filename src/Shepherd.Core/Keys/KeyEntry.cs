namespace Shepherd.Keys;

using System.Net;
using Shepherd.Limits;
using Shepherd.Security;

/// <summary>
/// A virtual key as the request path sees it: the stored record, its digest, its resolved model access and
/// networks, and the live counters (which survive updates of the key's settings).
/// </summary>
public sealed class KeyEntry
{
    public KeyEntry(VirtualKeyRecord record, ModelAccess models, KeyRuntime runtime)
    {
        Record = record;
        Digest = Convert.FromHexString(record.Hash);
        Models = models;
        Runtime = runtime;
        Networks = record.IpAllowlist.Select(ParseNetwork).ToArray();
        Caller = new Caller(record.Id, record.Name, record.Team, this);
    }

    public VirtualKeyRecord Record { get; }

    public string Id => Record.Id;

    /// <summary>SHA-256 of the key (32 bytes).</summary>
    public byte[] Digest { get; }

    public ModelAccess Models { get; }

    public IPNetwork[] Networks { get; }

    public KeyRuntime Runtime { get; }

    public Caller Caller { get; }

    /// <summary>The key has an RPM, TPM, parallel, budget or credit limit (otherwise the limiter is skipped).</summary>
    public bool HasLimits => Record.Rpm is not null || Record.Tpm is not null || Record.MaxParallel is not null || HasMoneyLimits;

    public bool HasMoneyLimits => Record.DailyBudget is not null || Record.MonthlyBudget is not null || Record.TotalBudget is not null || Record.CreditBalance is not null;

    /// <summary>Whether the key needs a prompt-token estimate before the call (TPM or money limits).</summary>
    public bool NeedsEstimate => Record.Tpm is not null || HasMoneyLimits;

    public bool AllowsAddress(IPAddress? address)
    {
        if (Networks.Length == 0)
        {
            return true;
        }

        if (address is null)
        {
            return false;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        foreach (var network in Networks)
        {
            if (network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }

    public static IPNetwork ParseNetwork(string text)
    {
        text = text.Trim();
        if (IPNetwork.TryParse(text, out var network))
        {
            return network;
        }

        var address = IPAddress.Parse(text);
        return new IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
    }

    public static bool IsValidNetwork(string text) =>
        IPNetwork.TryParse(text.Trim(), out _) || IPAddress.TryParse(text.Trim(), out _);
}
