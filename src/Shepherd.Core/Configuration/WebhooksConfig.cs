namespace Shepherd.Configuration;

/// <summary>
/// Signed webhooks turned into model calls: each source's events are verified, stored durably before they are
/// acknowledged, and processed by workers with retries, dead letters and replay (see docs/webhooks.md).
/// </summary>
public sealed record WebhooksConfig
{
    /// <summary>Where events come from: each source is served at <c>POST /webhooks/{name}</c>.</summary>
    public List<WebhookSourceConfig> Sources { get; init; } = [];

    /// <summary>Jobs processed at once by this instance; 0 only receives (another instance processes).</summary>
    public int Workers { get; init; } = 4;

    /// <summary>How long a leased job stays invisible to other workers without a heartbeat (a crashed worker's jobs come back after it).</summary>
    public int LeaseS { get; init; } = 60;

    /// <summary>Days finished events (every job completed or skipped) are kept, with their results and attempts; 0 keeps them for ever. Dead letters stay until purged.</summary>
    public int RetentionDays { get; init; } = 30;

    public WebhookRetryConfig Retry { get; init; } = new();
}

/// <summary>Retries of a failed job: exponential backoff from <see cref="BaseMs"/> with full jitter, capped at <see cref="MaxMs"/>.</summary>
public sealed record WebhookRetryConfig
{
    /// <summary>Tries per job (the first included) before it goes to the dead letters.</summary>
    public int MaxAttempts { get; init; } = 5;

    public int BaseMs { get; init; } = 1_000;

    public int MaxMs { get; init; } = 300_000;
}

/// <summary>One webhook sender: how its requests are verified and parsed, and what to do with each event type.</summary>
public sealed record WebhookSourceConfig
{
    /// <summary>The path segment (<c>/webhooks/{name}</c>): letters, digits, '.', '_' and '-'.</summary>
    public string Name { get; init; } = "";

    /// <summary>HMAC-SHA256 secrets; a signature made with any of them is accepted (rotation without downtime).</summary>
    public List<string> Secrets { get; init; } = [];

    /// <summary>The header carrying <c>sha256=&lt;hex&gt;</c> (or bare hex) of the signed payload.</summary>
    public string SignatureHeader { get; init; } = "x-signature";

    /// <summary>When set, this header carries the unix time of sending; the signed payload is then <c>{timestamp}.{body}</c>.</summary>
    public string? TimestampHeader { get; init; }

    /// <summary>How far the timestamp may be from the gateway's clock (replay protection).</summary>
    public int ToleranceS { get; init; } = 300;

    /// <summary>Dotted JSON path of the event id (idempotency); an event without one is identified by the SHA-256 of its body.</summary>
    public string IdField { get; init; } = "id";

    /// <summary>A header carrying the event id instead (it wins over <see cref="IdField"/> when present).</summary>
    public string? IdHeader { get; init; }

    /// <summary>Dotted JSON path of the event type the rules match on.</summary>
    public string TypeField { get; init; } = "type";

    /// <summary>Largest accepted body (413 above it).</summary>
    public int MaxBodyBytes { get; init; } = 1_048_576;

    /// <summary>The virtual key the processing runs under (its limits, budgets and usage); none: the master key.</summary>
    public string? Key { get; init; }

    /// <summary>Checked in order; the first whose <c>on</c> matches the event type decides.</summary>
    public List<WebhookRuleConfig> Rules { get; init; } = [];

    /// <summary>Where to POST each result (signed), if anywhere.</summary>
    public WebhookDeliverConfig? Deliver { get; init; }
}

/// <summary>What to do with events of one type.</summary>
public sealed record WebhookRuleConfig
{
    public const string ProcessAction = "process";
    public const string SkipAction = "skip";

    /// <summary>The event type: exact, a prefix with <c>*</c> (<c>agent.*</c>), or <c>*</c> for every type.</summary>
    public string On { get; init; } = "";

    /// <summary><c>process</c> (call the model) or <c>skip</c> (store the event as skipped).</summary>
    public string Action { get; init; } = ProcessAction;

    /// <summary>The model (name, alias or virtual model) to call.</summary>
    public string? Model { get; init; }

    /// <summary>The system message template, if any.</summary>
    public string? System { get; init; }

    /// <summary>The user message template; none: the whole event as JSON.</summary>
    public string? User { get; init; }

    public double? Temperature { get; init; }

    public int? MaxTokens { get; init; }
}

/// <summary>Where results are POSTed, signed like the incoming webhooks.</summary>
public sealed record WebhookDeliverConfig
{
    public string Url { get; init; } = "";

    /// <summary>The HMAC-SHA256 secret of <c>x-shepherd-signature</c>.</summary>
    public string Secret { get; init; } = "";

    /// <summary>Time limit of one delivery attempt.</summary>
    public int TimeoutMs { get; init; } = 10_000;
}
