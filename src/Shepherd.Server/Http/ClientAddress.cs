namespace Shepherd.Server.Http;

using System.Net;
using Microsoft.AspNetCore.Http;

/// <summary>
/// The client's IP address: the connection's peer, or — only when that peer is a configured trusted proxy — the
/// right-most address in <c>X-Forwarded-For</c> that is not itself a trusted proxy.
/// </summary>
public sealed class ClientAddress(IReadOnlyList<IPNetwork> trustedProxies)
{
    public IPAddress? Resolve(HttpContext context)
    {
        var peer = Normalise(context.Connection.RemoteIpAddress);
        if (peer is null || trustedProxies.Count == 0 || !IsTrusted(peer))
        {
            return peer;
        }

        var forwarded = context.Request.Headers["X-Forwarded-For"];
        for (var h = forwarded.Count - 1; h >= 0; h--)
        {
            var parts = (forwarded[h] ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            for (var i = parts.Length - 1; i >= 0; i--)
            {
                if (!IPAddress.TryParse(parts[i], out var hop))
                {
                    // A malformed hop ends what can be trusted.
                    return peer;
                }

                hop = Normalise(hop)!;
                if (!IsTrusted(hop))
                {
                    return hop;
                }

                peer = hop;
            }
        }

        return peer;
    }

    private bool IsTrusted(IPAddress address)
    {
        foreach (var network in trustedProxies)
        {
            if (network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }

    private static IPAddress? Normalise(IPAddress? address) =>
        address is { IsIPv4MappedToIPv6: true } ? address.MapToIPv4() : address;
}
