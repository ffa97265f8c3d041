namespace Shepherd.Limits;

using System.Globalization;
using Shepherd.Errors;
using Shepherd.Keys;

/// <summary>
/// Receives spend that cannot wait in a key's counters for the next save: the rest of a day that just ended.
/// (Ordinary spend is summed per key and day in <see cref="KeyRuntime"/>, and saved by the ledger in one row per key.)
/// </summary>
public interface ISpendRecorder
{
    void Record(SpendDelta delta);
}

/// <summary>
/// The limiter of one instance: every check of a key, and the reservation that follows, under the key's lock.
/// Allocation-free on the request path.
/// </summary>
public sealed class InMemoryLimiter(TimeProvider time, BudgetCalendar calendar, ISpendRecorder? spend = null) : ILimiter
{
    private static readonly long Window = TimeSpan.TicksPerMinute;

    public ValueTask<LimitDecision> AcquireAsync(KeyEntry key, LimitRequest request, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Acquire(key, request));

    public LimitDecision Acquire(KeyEntry key, LimitRequest request)
    {
        var record = key.Record;
        var runtime = key.Runtime;
        var now = time.GetUtcNow();
        var ticks = now.UtcTicks;
        var today = record.DailyBudget is not null || record.MonthlyBudget is not null ? calendar.Today(now) : default;
        lock (runtime.Gate)
        {
            EvictRequests(runtime, record.Rpm, ticks);
            EvictTokens(runtime, ticks);
            RollWindows(runtime, today);

            // Check everything first; commit only when all limits allow it, so a refusal reserves nothing.
            var error = CheckParallel(record, runtime)
                ?? CheckRequests(record, runtime, ticks)
                ?? CheckTokens(record, runtime, request, ticks)
                ?? CheckMoney(record, runtime, request, today);
            if (error is not null)
            {
                return new LimitDecision(default, error, Snapshot(record, runtime, ticks, 0));
            }

            var counted = record.MaxParallel is not null;
            if (counted)
            {
                runtime.InFlight++;
            }

            if (record.Rpm is { } rpm)
            {
                if (runtime.RequestLog.Length != rpm)
                {
                    ResizeRequestLog(runtime, rpm);
                }

                runtime.RequestLog[(runtime.RequestHead + runtime.RequestCount) % rpm] = ticks;
                runtime.RequestCount++;
            }

            var sequence = -1L;
            if (record.Tpm is not null)
            {
                sequence = AppendTokens(runtime, ticks, request.Tokens);
            }

            runtime.Reserved += request.Cost;
            var lease = new LimitLease(key, sequence, request.Tokens, request.Cost, counted);
            return new LimitDecision(lease, null, Snapshot(record, runtime, ticks, 0));
        }
    }

    public ValueTask SettleAsync(LimitLease lease, long actualTokens, decimal actualCost)
    {
        Settle(lease, actualTokens, actualCost);
        return ValueTask.CompletedTask;
    }

    public void Settle(LimitLease lease, long actualTokens, decimal actualCost)
    {
        if (lease.Key is not { } key)
        {
            return;
        }

        var runtime = key.Runtime;
        var now = time.GetUtcNow();
        var today = calendar.Today(now);
        SpendDelta? spilled = null;
        lock (runtime.Gate)
        {
            if (lease.Counted)
            {
                runtime.InFlight--;
            }

            // Correct the reservation in its bucket, unless that second has already left the window.
            if (lease.TokenSequence >= 0)
            {
                var slot = (int)(lease.TokenSequence % KeyRuntime.TokenBuckets);
                if (runtime.TokenBucketSecond[slot] == lease.TokenSequence)
                {
                    var corrected = Math.Max(0, runtime.TokenBucket[slot] + actualTokens - lease.Tokens);
                    runtime.TokenSum += corrected - runtime.TokenBucket[slot];
                    runtime.TokenBucket[slot] = corrected;
                }
            }

            RollWindows(runtime, today);
            runtime.Reserved -= lease.Cost;
            if (actualCost != 0m)
            {
                runtime.SpentToday += actualCost;
                runtime.SpentThisMonth += actualCost;
                runtime.SpentTotal += actualCost;
                var debit = runtime.Credit is not null;
                if (debit)
                {
                    runtime.Credit -= actualCost;
                }

                // Summed per key and day until the ledger saves it: one row per key per save, not one per request.
                spilled = runtime.AddUnsavedLocked(key.Id, today, actualCost, debit);
            }
        }

        if (spilled is { } delta)
        {
            spend?.Record(delta);
        }
    }

    /// <summary>The current header values without reserving anything (for responses that did not reserve).</summary>
    public RateLimitSnapshot Peek(KeyEntry key)
    {
        var ticks = time.GetUtcNow().UtcTicks;
        lock (key.Runtime.Gate)
        {
            EvictRequests(key.Runtime, key.Record.Rpm, ticks);
            EvictTokens(key.Runtime, ticks);
            return Snapshot(key.Record, key.Runtime, ticks, 0);
        }
    }

    private static void RollWindows(KeyRuntime runtime, DateOnly today)
    {
        if (today == default || today == runtime.Day)
        {
            return;
        }

        if (today > runtime.Day)
        {
            var month = BudgetCalendar.MonthIndex(today);
            if (month != runtime.Month)
            {
                runtime.SpentThisMonth = 0m;
                runtime.Month = month;
            }

            runtime.SpentToday = 0m;
            runtime.Day = today;
        }
    }

    private static GatewayError? CheckParallel(Keys.VirtualKeyRecord record, KeyRuntime runtime) =>
        record.MaxParallel is { } max && runtime.InFlight >= max
            ? RateLimited($"Too many parallel requests for this key: limit {max}, in flight {runtime.InFlight}.", "requests", TimeSpan.FromSeconds(1))
            : null;

    private static GatewayError? CheckRequests(Keys.VirtualKeyRecord record, KeyRuntime runtime, long ticks)
    {
        if (record.Rpm is not { } rpm || runtime.RequestCount < rpm)
        {
            return null;
        }

        var reset = ResetOf(runtime.RequestLog[runtime.RequestHead], ticks);
        return RateLimited(
            $"Rate limit reached for requests per minute (RPM): limit {rpm}, used {runtime.RequestCount}, requested 1. Please try again in {Duration(reset)}.",
            "requests",
            reset);
    }

    private static GatewayError? CheckTokens(Keys.VirtualKeyRecord record, KeyRuntime runtime, LimitRequest request, long ticks)
    {
        if (record.Tpm is not { } tpm || runtime.TokenSum + request.Tokens <= tpm)
        {
            return null;
        }

        if (request.Tokens > tpm)
        {
            return RateLimited(
                $"Request too large for tokens per minute (TPM): limit {tpm}, requested {request.Tokens}. Send fewer tokens or lower max_tokens.",
                "tokens",
                TimeSpan.FromMinutes(1));
        }

        var reset = TokenReset(runtime, ticks);
        return RateLimited(
            $"Rate limit reached for tokens per minute (TPM): limit {tpm}, used {runtime.TokenSum}, requested {request.Tokens}. Please try again in {Duration(reset)}.",
            "tokens",
            reset);
    }

    private GatewayError? CheckMoney(Keys.VirtualKeyRecord record, KeyRuntime runtime, LimitRequest request, DateOnly today)
    {
        var cost = request.Cost;
        if (record.DailyBudget is { } daily && runtime.SpentToday + runtime.Reserved + cost > daily)
        {
            return Quota($"This key has reached its daily budget of ${Money(daily)} (spent ${Money(runtime.SpentToday)}).", calendar.NextDayStart(today) - time.GetUtcNow());
        }

        if (record.MonthlyBudget is { } monthly && runtime.SpentThisMonth + runtime.Reserved + cost > monthly)
        {
            return Quota($"This key has reached its monthly budget of ${Money(monthly)} (spent ${Money(runtime.SpentThisMonth)}).", calendar.NextMonthStart(today) - time.GetUtcNow());
        }

        if (record.TotalBudget is { } total && runtime.SpentTotal + runtime.Reserved + cost > total)
        {
            return Quota($"This key has reached its total budget of ${Money(total)}.", null);
        }

        if (runtime.Credit is { } credit && credit - runtime.Reserved - cost < 0m)
        {
            return Quota($"This key's prepaid credit is insufficient for this request (balance ${Money(credit)}, this request may cost up to ${Money(cost)}). Top up to continue.", null);
        }

        return null;
    }

    /// <returns>The second (since the epoch) whose bucket holds the reservation: the lease's handle for settlement.</returns>
    private static long AppendTokens(KeyRuntime runtime, long ticks, long tokens)
    {
        var second = ticks / TimeSpan.TicksPerSecond;
        var slot = (int)(second % KeyRuntime.TokenBuckets);
        if (runtime.TokenBucketSecond[slot] != second)
        {
            runtime.TokenSum -= runtime.TokenBucket[slot];
            runtime.TokenBucket[slot] = 0;
            runtime.TokenBucketSecond[slot] = second;
        }

        runtime.TokenBucket[slot] += tokens;
        runtime.TokenSum += tokens;
        return second;
    }

    /// <summary>When the oldest non-empty second leaves the window.</summary>
    private static TimeSpan TokenReset(KeyRuntime runtime, long ticks)
    {
        var now = ticks / TimeSpan.TicksPerSecond;
        for (var age = KeyRuntime.TokenBuckets - 1; age >= 0; age--)
        {
            var second = now - age;
            var slot = (int)(second % KeyRuntime.TokenBuckets);
            if (runtime.TokenBucketSecond[slot] == second && runtime.TokenBucket[slot] > 0)
            {
                return TimeSpan.FromTicks(((second + KeyRuntime.TokenBuckets) * TimeSpan.TicksPerSecond) - ticks);
            }
        }

        return TimeSpan.Zero;
    }

    private static void EvictRequests(KeyRuntime runtime, int? rpm, long ticks)
    {
        var log = runtime.RequestLog;
        while (runtime.RequestCount > 0 && ticks - log[runtime.RequestHead] >= Window)
        {
            runtime.RequestHead = (runtime.RequestHead + 1) % log.Length;
            runtime.RequestCount--;
        }

        if (rpm is null && runtime.RequestCount == 0 && log.Length > 0)
        {
            runtime.RequestLog = [];
            runtime.RequestHead = 0;
        }
    }

    private static void ResizeRequestLog(KeyRuntime runtime, int rpm)
    {
        // The limit changed: keep the newest entries that fit.
        var keep = Math.Min(runtime.RequestCount, rpm);
        var log = new long[rpm];
        for (var i = 0; i < keep; i++)
        {
            log[i] = runtime.RequestLog[(runtime.RequestHead + runtime.RequestCount - keep + i) % runtime.RequestLog.Length];
        }

        runtime.RequestLog = log;
        runtime.RequestHead = 0;
        runtime.RequestCount = keep;
    }

    private static void EvictTokens(KeyRuntime runtime, long ticks)
    {
        if (runtime.TokenSum == 0)
        {
            return;
        }

        // A bucket counts while its second is within the last 60 s.
        var oldest = (ticks / TimeSpan.TicksPerSecond) - KeyRuntime.TokenBuckets;
        for (var slot = 0; slot < KeyRuntime.TokenBuckets; slot++)
        {
            if (runtime.TokenBucket[slot] != 0 && runtime.TokenBucketSecond[slot] <= oldest)
            {
                runtime.TokenSum -= runtime.TokenBucket[slot];
                runtime.TokenBucket[slot] = 0;
            }
        }
    }

    private static RateLimitSnapshot Snapshot(Keys.VirtualKeyRecord record, KeyRuntime runtime, long ticks, int _)
    {
        var requestReset = runtime.RequestCount > 0 && runtime.RequestLog.Length > 0 ? ResetOf(runtime.RequestLog[runtime.RequestHead], ticks) : TimeSpan.Zero;
        var tokenReset = runtime.TokenSum > 0 ? TokenReset(runtime, ticks) : TimeSpan.Zero;
        return new RateLimitSnapshot(
            record.Rpm,
            record.Rpm is { } rpm ? Math.Max(0, rpm - runtime.RequestCount) : 0,
            requestReset,
            record.Tpm,
            record.Tpm is { } tpm ? Math.Max(0, tpm - runtime.TokenSum) : 0,
            tokenReset);
    }

    private static TimeSpan ResetOf(long oldestTicks, long now) => TimeSpan.FromTicks(Math.Max(0, oldestTicks + Window - now));

    private static GatewayError RateLimited(string message, string type, TimeSpan retryAfter) =>
        new(429, message, type, "rate_limit_exceeded") { RetryAfter = retryAfter };

    private static GatewayError Quota(string message, TimeSpan? retryAfter) =>
        new(429, message, "insufficient_quota", "insufficient_quota") { RetryAfter = retryAfter };

    private static string Money(decimal value) => value.ToString("0.00####", CultureInfo.InvariantCulture);

    /// <summary>OpenAI's reset format: <c>12ms</c>, <c>1.5s</c>, <c>6m0s</c>.</summary>
    public static string Duration(TimeSpan span)
    {
        if (span < TimeSpan.FromSeconds(1))
        {
            return $"{Math.Max(0, (int)Math.Ceiling(span.TotalMilliseconds))}ms";
        }

        if (span < TimeSpan.FromMinutes(1))
        {
            return $"{Math.Ceiling(span.TotalSeconds * 10) / 10:0.#}s".Replace(',', '.');
        }

        return $"{(int)span.TotalMinutes}m{span.Seconds}s";
    }
}
