namespace Shepherd.Limits;

using Shepherd.Errors;
using Shepherd.Keys;

/// <summary>What a request asks of a key's limits before it is sent.</summary>
/// <param name="Tokens">Estimated prompt tokens plus the output tokens it may generate (TPM reservation).</param>
/// <param name="Cost">The worst-case cost in USD (budget and credit reservation).</param>
public readonly record struct LimitRequest(long Tokens, decimal Cost);

/// <summary>
/// Checks and reserves, in one atomic step, everything a key's limits govern: parallel requests, requests per minute,
/// tokens per minute, budgets and credit. The lease it hands out is settled with the real usage afterwards.
/// </summary>
/// <remarks>In-memory now; a Redis implementation (one Lua script per check-and-reserve) shares limits across instances.</remarks>
public interface ILimiter
{
    ValueTask<LimitDecision> AcquireAsync(KeyEntry key, LimitRequest request, CancellationToken cancellationToken);

    /// <summary>Records the real usage of a request and releases the rest of its reservation.</summary>
    ValueTask SettleAsync(LimitLease lease, long actualTokens, decimal actualCost);
}

/// <summary>What the <c>x-ratelimit-*</c> headers show: limits, what is left after this request, and when it frees up.</summary>
public readonly record struct RateLimitSnapshot(
    int? RequestLimit,
    int RequestsRemaining,
    TimeSpan RequestsReset,
    int? TokenLimit,
    long TokensRemaining,
    TimeSpan TokensReset);

/// <summary>The limiter's answer: a lease, or the error the client gets (429 with retry-after); plus the header values.</summary>
public readonly struct LimitDecision
{
    public LimitDecision(LimitLease lease, GatewayError? error, RateLimitSnapshot snapshot)
    {
        Lease = lease;
        Error = error;
        Snapshot = snapshot;
    }

    public LimitLease Lease { get; }

    public GatewayError? Error { get; }

    public RateLimitSnapshot Snapshot { get; }

    public bool Allowed => Error is null;
}

/// <summary>A reservation held while a request runs (streams until they end). A default lease holds nothing.</summary>
public readonly struct LimitLease
{
    public LimitLease(KeyEntry key, long tokenSequence, long tokens, decimal cost, bool counted)
    {
        Key = key;
        TokenSequence = tokenSequence;
        Tokens = tokens;
        Cost = cost;
        Counted = counted;
    }

    public KeyEntry? Key { get; }

    /// <summary>The second whose TPM bucket holds the reservation (-1 when the key has no TPM limit).</summary>
    public long TokenSequence { get; }

    public long Tokens { get; }

    public decimal Cost { get; }

    /// <summary>The request took a parallel slot that settlement frees.</summary>
    public bool Counted { get; }

    /// <summary>Identifies the reservation in a shared store (Redis); 0 for the in-memory limiter, negative for a local fallback.</summary>
    public long Id { get; init; }

    public bool IsActive => Key is not null;
}
