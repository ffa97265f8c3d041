namespace Shepherd.Accounting;

/// <summary>Durable usage records and their daily rollups. Written by the usage recorder in batches; read by reports.</summary>
public interface IUsageStore
{
    /// <summary>Inserts the records not stored yet (a record already stored, by record id, is skipped: replays never double).</summary>
    /// <returns>How many were new.</returns>
    Task<int> WriteAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken);

    /// <summary>Deletes raw records older than <paramref name="before"/>; daily rollups stay.</summary>
    Task<int> PurgeAsync(DateTimeOffset before, CancellationToken cancellationToken);

    /// <summary>Sums the records in [From, To) per group, ordered by group: whole UTC days from the daily rollups (kept
    /// for ever), the parts of days at either end of the range and every hour from raw records (kept for the retention period).</summary>
    Task<IReadOnlyList<UsageRow>> QueryAsync(UsageQuery query, CancellationToken cancellationToken);
}

/// <summary>What to group usage by.</summary>
public enum UsageGrouping
{
    Key,
    Team,
    Model,
    Provider,
    Day,
    Hour,
}

/// <summary>A report request: records in [From, To) grouped one way.</summary>
public sealed record UsageQuery(DateTimeOffset From, DateTimeOffset To, UsageGrouping GroupBy)
{
    /// <summary>Only this key's records.</summary>
    public string? KeyId { get; init; }
}

/// <summary>One group of a report. Token counts follow OpenAI's arithmetic (cached within prompt, reasoning within completion).</summary>
public sealed record UsageRow(
    string Group,
    long Requests,
    long Errors,
    long PromptTokens,
    long CachedTokens,
    long CompletionTokens,
    long ReasoningTokens,
    long CacheWriteTokens,
    decimal Cost,
    long Estimated)
{
    /// <summary>For groupings other than model: the tokens per served model, so a baseline price can be applied.</summary>
    public IReadOnlyDictionary<string, (long Prompt, long Cached, long Completion)> ByModel { get; init; } =
        new Dictionary<string, (long, long, long)>();
}
