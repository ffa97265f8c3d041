namespace Shepherd.Webhooks;

using System.Collections.Frozen;
using System.Text;
using Shepherd.Configuration;

/// <summary>The <c>webhooks</c> section compiled once at start-up: sources by name, secrets as bytes, rules and templates parsed.</summary>
public sealed class WebhookRuntime
{
    public WebhookRuntime(WebhooksConfig config)
    {
        Sources = config.Sources.Select(s => new WebhookSource(s)).ToArray();
        ByName = Sources.ToFrozenDictionary(s => s.Name, StringComparer.OrdinalIgnoreCase);
        SourceNames = Sources.Select(s => s.Name).ToArray();
        Workers = config.Workers;
        Lease = TimeSpan.FromSeconds(config.LeaseS);
        MaxAttempts = config.Retry.MaxAttempts;
        RetryBase = TimeSpan.FromMilliseconds(config.Retry.BaseMs);
        RetryMax = TimeSpan.FromMilliseconds(config.Retry.MaxMs);
    }

    public IReadOnlyList<WebhookSource> Sources { get; }

    public FrozenDictionary<string, WebhookSource> ByName { get; }

    /// <summary>The configured source names (what this instance leases jobs of).</summary>
    public IReadOnlyCollection<string> SourceNames { get; }

    public bool Enabled => Sources.Count > 0;

    public int Workers { get; }

    public TimeSpan Lease { get; }

    public int MaxAttempts { get; }

    public TimeSpan RetryBase { get; }

    public TimeSpan RetryMax { get; }
}

/// <summary>One configured source, ready to verify, parse and route events.</summary>
public sealed class WebhookSource
{
    public WebhookSource(WebhookSourceConfig config)
    {
        Name = config.Name;
        Secrets = config.Secrets.Where(s => s.Length > 0).Select(Encoding.UTF8.GetBytes).ToArray();
        SignatureHeader = config.SignatureHeader;
        TimestampHeader = config.TimestampHeader;
        Tolerance = TimeSpan.FromSeconds(config.ToleranceS);
        IdHeader = config.IdHeader;
        IdPath = Path(config.IdField);
        TypePath = Path(config.TypeField);
        MaxBodyBytes = config.MaxBodyBytes;
        Key = config.Key;
        Rules = config.Rules.Select(r => new WebhookRule(r)).ToArray();
        if (config.Deliver is { } deliver)
        {
            Deliver = new WebhookDelivery(new Uri(deliver.Url), Encoding.UTF8.GetBytes(deliver.Secret), TimeSpan.FromMilliseconds(deliver.TimeoutMs));
        }
    }

    public string Name { get; }

    public IReadOnlyList<byte[]> Secrets { get; }

    public string SignatureHeader { get; }

    public string? TimestampHeader { get; }

    public TimeSpan Tolerance { get; }

    public string? IdHeader { get; }

    public JsonPath IdPath { get; }

    public JsonPath TypePath { get; }

    public int MaxBodyBytes { get; }

    /// <summary>The virtual key processing runs under; null: the master key.</summary>
    public string? Key { get; }

    public IReadOnlyList<WebhookRule> Rules { get; }

    public WebhookDelivery? Deliver { get; }

    /// <summary>A path the validator accepted.</summary>
    private static JsonPath Path(string text) =>
        JsonPath.TryParse(text, out var path, out var error) ? path! : throw new ArgumentException(error, nameof(text));

    /// <summary>The first rule whose <c>on</c> matches, if any.</summary>
    public WebhookRule? Match(string eventType)
    {
        foreach (var rule in Rules)
        {
            if (rule.Matches(eventType))
            {
                return rule;
            }
        }

        return null;
    }
}

/// <summary>A compiled rule.</summary>
public sealed class WebhookRule
{
    private readonly string? _prefix;

    public WebhookRule(WebhookRuleConfig config)
    {
        On = config.On;
        _prefix = config.On.EndsWith('*') ? config.On[..^1] : null;
        Skip = config.Action == WebhookRuleConfig.SkipAction;
        Model = config.Model ?? "";
        System = config.System is null ? null : WebhookTemplate.TryParse(config.System, out _);
        User = config.User is null ? null : WebhookTemplate.TryParse(config.User, out _);
        Temperature = config.Temperature;
        MaxTokens = config.MaxTokens;
    }

    public string On { get; }

    public bool Skip { get; }

    public string Model { get; }

    public WebhookTemplate? System { get; }

    /// <summary>The user message; null: the whole event as JSON.</summary>
    public WebhookTemplate? User { get; }

    public double? Temperature { get; }

    public int? MaxTokens { get; }

    public bool Matches(string eventType) =>
        _prefix is null ? string.Equals(On, eventType, StringComparison.Ordinal) : eventType.StartsWith(_prefix, StringComparison.Ordinal);
}

/// <summary>Where a source's results go.</summary>
public sealed record WebhookDelivery(Uri Url, byte[] Secret, TimeSpan Timeout);
