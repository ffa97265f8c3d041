namespace Shepherd.Accounting;

/// <summary>One client request, as it is accounted: who, what, where, how it went, what it used and cost.</summary>
public sealed record UsageRecord
{
    public required DateTimeOffset Time { get; init; }

    /// <summary>The request id the client saw (<c>x-request-id</c>): the client's own when it sent a usable one, so it may repeat.</summary>
    public required string RequestId { get; init; }

    /// <summary>Unique per gateway request: what the store deduplicates on (a replay never doubles a record, and two
    /// requests that share a client-chosen request id are still two records). Null: <see cref="RequestId"/>.</summary>
    public string? RecordId { get; init; }

    /// <summary>The virtual key's id, or <c>master</c>.</summary>
    public required string KeyId { get; init; }

    public string? Team { get; init; }

    /// <summary>The model name the client sent (an alias or virtual model included).</summary>
    public string? RequestedModel { get; init; }

    /// <summary>The configured model that served (a fallback's name when one served).</summary>
    public string? ServedModel { get; init; }

    public string? Provider { get; init; }

    /// <summary><c>provider/upstream-model</c>.</summary>
    public string? Deployment { get; init; }

    public int Attempts { get; init; }

    public bool FallbackUsed { get; init; }

    public bool Streamed { get; init; }

    /// <summary>The HTTP status the client got (499 when it went away).</summary>
    public int Status { get; init; }

    /// <summary>The error code the client got (or the failure class), null on success.</summary>
    public string? ErrorClass { get; init; }

    /// <summary>Prompt tokens, cached ones included.</summary>
    public int PromptTokens { get; init; }

    /// <summary>The cached part of <see cref="PromptTokens"/>.</summary>
    public int CachedTokens { get; init; }

    /// <summary>Output tokens, reasoning included.</summary>
    public int CompletionTokens { get; init; }

    /// <summary>The reasoning part of <see cref="CompletionTokens"/>.</summary>
    public int ReasoningTokens { get; init; }

    /// <summary>Prompt tokens written to the provider's cache (a part of <see cref="PromptTokens"/>).</summary>
    public int CacheWriteTokens { get; init; }

    /// <summary>USD, to the nano-dollar.</summary>
    public decimal Cost { get; init; }

    public double LatencyMs { get; init; }

    /// <summary>Time to the first byte sent to the client (streams), else null.</summary>
    public double? TimeToFirstTokenMs { get; init; }

    /// <summary>Output tokens per second after the first token (streams), else null.</summary>
    public double? OutputTokensPerSecond { get; init; }

    /// <summary>The provider reported no usage: the tokens were counted by the gateway.</summary>
    public bool Estimated { get; init; }
}

/// <summary>Takes usage records off the request path. Never blocks and never throws: a record it cannot queue is spilled, not lost.</summary>
public interface IUsageSink
{
    void Write(UsageRecord record);
}

/// <summary>A sink that keeps nothing (usage recording off).</summary>
public sealed class NullUsageSink : IUsageSink
{
    public static readonly NullUsageSink Instance = new();

    public void Write(UsageRecord record)
    {
    }
}
