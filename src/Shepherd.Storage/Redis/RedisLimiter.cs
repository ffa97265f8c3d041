namespace Shepherd.Storage.Redis;

using System.Globalization;
using Microsoft.Extensions.Logging;
using Shepherd.Errors;
using Shepherd.Keys;
using Shepherd.Limits;
using StackExchange.Redis;

/// <summary>
/// The limiter shared by every instance: each check-and-reserve is ONE Lua script run on the Redis server (one round
/// trip, atomic), and so is each settlement. Parallel requests, requests per minute (exact sliding log), tokens per
/// minute (one-second buckets), budgets and credit behave exactly as in <see cref="InMemoryLimiter"/>, but across
/// instances. Money is kept in integer nano-dollars.
/// </summary>
/// <remarks>
/// When Redis does not answer, <c>state.on_failure</c> decides: <c>open</c> (default) falls back to this instance's
/// in-memory limiter (limits then hold per instance until Redis is back), <c>closed</c> refuses with 503. Either way
/// nothing crashes and readiness reports the degradation.
/// </remarks>
public sealed partial class RedisLimiter : ILimiter
{
    private const decimal Nanos = 1_000_000_000m;

    // KEYS: 1 inflight zset, 2 rpm zset, 3 tpm hash, 4 reserved hash, 5 spend day, 6 spend month, 7 spend total, 8 credit
    // ARGV: 1 now ms, 2 lease id, 3 max parallel, 4 rpm, 5 tpm, 6 tokens, 7 cost nanos, 8 daily, 9 monthly, 10 total, 11 credit limited
    private const string AcquireScript = """
        local now = tonumber(ARGV[1])
        local lease = ARGV[2]
        local maxp = tonumber(ARGV[3])
        local rpm = tonumber(ARGV[4])
        local tpm = tonumber(ARGV[5])
        local tokens = tonumber(ARGV[6])
        local cost = tonumber(ARGV[7])
        -- Leases older than an hour belong to a crashed instance: free them.
        local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
        for i = 1, #stale do redis.call('HDEL', KEYS[4], stale[i]) end
        if #stale > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000) end
        local inflight = redis.call('ZCARD', KEYS[1])
        if maxp >= 0 and inflight >= maxp then return {1, inflight, 0, 0} end
        local count = 0
        local oldest = 0
        if rpm >= 0 then
          redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60000)
          count = redis.call('ZCARD', KEYS[2])
          if count > 0 then oldest = tonumber(redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]) end
          if count >= rpm then return {2, count, oldest, 0} end
        end
        local tsum = 0
        local second = math.floor(now / 1000)
        if tpm >= 0 then
          local h = redis.call('HGETALL', KEYS[3])
          for i = 1, #h, 2 do
            if tonumber(h[i]) <= second - 60 then redis.call('HDEL', KEYS[3], h[i]) else tsum = tsum + tonumber(h[i + 1]) end
          end
          if tsum + tokens > tpm then return {3, count, oldest, tsum} end
        end
        local reserved = 0
        local r = redis.call('HVALS', KEYS[4])
        for i = 1, #r do reserved = reserved + tonumber(r[i]) end
        local daily = tonumber(ARGV[8])
        if daily >= 0 and tonumber(redis.call('GET', KEYS[5]) or '0') + reserved + cost > daily then return {4, count, oldest, tsum} end
        local monthly = tonumber(ARGV[9])
        if monthly >= 0 and tonumber(redis.call('GET', KEYS[6]) or '0') + reserved + cost > monthly then return {5, count, oldest, tsum} end
        local total = tonumber(ARGV[10])
        if total >= 0 and tonumber(redis.call('GET', KEYS[7]) or '0') + reserved + cost > total then return {6, count, oldest, tsum} end
        if ARGV[11] == '1' and tonumber(redis.call('GET', KEYS[8]) or '0') - reserved - cost < 0 then return {7, count, oldest, tsum} end
        redis.call('ZADD', KEYS[1], now, lease)
        redis.call('PEXPIRE', KEYS[1], 3700000)
        if rpm >= 0 then
          redis.call('ZADD', KEYS[2], now, lease)
          redis.call('PEXPIRE', KEYS[2], 61000)
          count = count + 1
          if oldest == 0 then oldest = now end
        end
        if tpm >= 0 then
          redis.call('HINCRBY', KEYS[3], second, tokens)
          redis.call('EXPIRE', KEYS[3], 120)
          tsum = tsum + tokens
        end
        if cost > 0 then
          redis.call('HSET', KEYS[4], lease, cost)
          redis.call('PEXPIRE', KEYS[4], 3700000)
        end
        return {0, count, oldest, tsum}
        """;

    // KEYS: 1 inflight, 3 tpm, 4 reserved, 5 day, 6 month, 7 total, 8 credit (2 unused)
    // ARGV: 1 lease, 2 reserved second, 3 token delta, 4 actual cost nanos, 5 now ms
    private const string SettleScript = """
        redis.call('ZREM', KEYS[1], ARGV[1])
        redis.call('HDEL', KEYS[4], ARGV[1])
        local second = tonumber(ARGV[2])
        local delta = tonumber(ARGV[3])
        if second >= 0 and delta ~= 0 and second > math.floor(tonumber(ARGV[5]) / 1000) - 60 then
          if redis.call('HEXISTS', KEYS[3], second) == 1 then
            local v = redis.call('HINCRBY', KEYS[3], second, delta)
            if v < 0 then redis.call('HSET', KEYS[3], second, 0) end
          end
        end
        local cost = tonumber(ARGV[4])
        if cost ~= 0 then
          redis.call('INCRBY', KEYS[5], cost)
          redis.call('EXPIRE', KEYS[5], 172800)
          redis.call('INCRBY', KEYS[6], cost)
          redis.call('EXPIRE', KEYS[6], 3456000)
          redis.call('INCRBY', KEYS[7], cost)
          if redis.call('EXISTS', KEYS[8]) == 1 then redis.call('DECRBY', KEYS[8], cost) end
        end
        return 1
        """;

    private readonly IConnectionMultiplexer _redis;
    private readonly InMemoryLimiter _local;
    private readonly TimeProvider _time;
    private readonly BudgetCalendar _calendar;
    private readonly bool _failOpen;
    private readonly ILogger _logger;
    private readonly string _prefix;
    private readonly string _instance = Guid.NewGuid().ToString("N")[..12];
    private long _leases;
    private long _lastLogged = long.MinValue / 2;

    private readonly ISpendRecorder? _spill;

    public RedisLimiter(IConnectionMultiplexer redis, InMemoryLimiter local, TimeProvider time, BudgetCalendar calendar, bool failOpen, ILogger<RedisLimiter> logger, ISpendRecorder? spill = null, string prefix = "shp")
    {
        _spill = spill;
        _redis = redis;
        _local = local;
        _time = time;
        _calendar = calendar;
        _failOpen = failOpen;
        _logger = logger;
        _prefix = prefix;
    }

    /// <summary>Redis did not answer the last call (readiness reports "degraded").</summary>
    public bool Degraded { get; private set; }

    public async ValueTask<LimitDecision> AcquireAsync(KeyEntry key, LimitRequest request, CancellationToken cancellationToken)
    {
        var record = key.Record;
        var now = _time.GetUtcNow();
        var today = _calendar.Today(now);
        var leaseId = Interlocked.Increment(ref _leases);
        var costNanos = ToNanos(request.Cost);
        RedisResult result;
        try
        {
            if (!_redis.IsConnected)
            {
                // Known to be down: no command, no exception per request.
                throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "not connected");
            }

            result = await _redis.GetDatabase().ScriptEvaluateAsync(
                AcquireScript,
                Keys(key.Id, today),
                [
                    now.ToUnixTimeMilliseconds(),
                    $"{_instance}:{leaseId}",
                    record.MaxParallel ?? -1,
                    record.Rpm ?? -1,
                    record.Tpm ?? -1,
                    request.Tokens,
                    costNanos,
                    Limit(record.DailyBudget),
                    Limit(record.MonthlyBudget),
                    Limit(record.TotalBudget),
                    record.CreditBalance is null ? "0" : "1",
                ]).ConfigureAwait(false);
            Degraded = false;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or RedisConnectionException)
        {
            Unavailable(ex, _failOpen ? "falling back to this instance's limits" : "refusing limited keys");
            if (_failOpen)
            {
                var local = _local.Acquire(key, request);
                return local.Allowed ? new LimitDecision(local.Lease with { Id = -1 }, null, local.Snapshot) : local;
            }

            return new LimitDecision(default, new GatewayError(503, "Limits cannot be checked right now (shared state unavailable); try again shortly.", "server_error", "limits_unavailable") { RetryAfter = TimeSpan.FromSeconds(1) }, default);
        }

        var values = (RedisResult[])result!;
        var code = (int)values[0];
        var count = (int)values[1];
        var oldest = (long)values[2];
        var tokens = (long)values[3];
        var requestReset = oldest > 0 ? TimeSpan.FromMilliseconds(Math.Max(0, oldest + 60_000 - now.ToUnixTimeMilliseconds())) : TimeSpan.Zero;
        var snapshot = new RateLimitSnapshot(
            record.Rpm,
            record.Rpm is { } rpm ? Math.Max(0, rpm - count) : 0,
            requestReset,
            record.Tpm,
            record.Tpm is { } tpm ? Math.Max(0, tpm - tokens) : 0,
            record.Tpm is not null ? TimeSpan.FromSeconds(60 - (now.ToUnixTimeSeconds() % 60)) : TimeSpan.Zero);
        var error = code switch
        {
            0 => null,
            1 => Limited($"Too many parallel requests for this key: limit {record.MaxParallel}.", "requests", TimeSpan.FromSeconds(1)),
            2 => Limited($"Rate limit reached for requests per minute (RPM): limit {record.Rpm}, used {count}, requested 1. Please try again in {InMemoryLimiter.Duration(requestReset)}.", "requests", requestReset),
            3 => Limited($"Rate limit reached for tokens per minute (TPM): limit {record.Tpm}, used {tokens}, requested {request.Tokens}.", "tokens", TimeSpan.FromSeconds(1)),
            4 => Quota($"This key has reached its daily budget of ${record.DailyBudget}.", _calendar.NextDayStart(today) - now),
            5 => Quota($"This key has reached its monthly budget of ${record.MonthlyBudget}.", _calendar.NextMonthStart(today) - now),
            6 => Quota($"This key has reached its total budget of ${record.TotalBudget}.", null),
            _ => Quota("This key's prepaid credit is insufficient for this request. Top up to continue.", null),
        };
        if (error is not null)
        {
            return new LimitDecision(default, error, snapshot);
        }

        var lease = new LimitLease(key, record.Tpm is null ? -1 : now.ToUnixTimeSeconds(), request.Tokens, request.Cost, record.MaxParallel is not null) { Id = leaseId };
        return new LimitDecision(lease, null, snapshot);
    }

    public ValueTask SettleAsync(LimitLease lease, long actualTokens, decimal actualCost)
    {
        if (lease.Key is not { } key)
        {
            return ValueTask.CompletedTask;
        }

        if (lease.Id < 0)
        {
            return _local.SettleAsync(lease, actualTokens, actualCost);
        }

        Settle(key, lease, actualTokens, actualCost);
        return ValueTask.CompletedTask;
    }

    private void Settle(KeyEntry key, LimitLease lease, long actualTokens, decimal actualCost)
    {
        var now = _time.GetUtcNow();
        var today = _calendar.Today(now);

        // Pipelined, not awaited: the acquire is the one round trip a request waits for. Commands of one connection
        // run in order, so this instance's next acquire for the key already sees the settlement.
        Task settle;
        try
        {
            settle = _redis.GetDatabase().ScriptEvaluateAsync(
                SettleScript,
                Keys(key.Id, today),
                [
                    $"{_instance}:{lease.Id}",
                    lease.TokenSequence,
                    actualTokens - lease.Tokens,
                    ToNanos(actualCost),
                    now.ToUnixTimeMilliseconds(),
                ]);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or RedisConnectionException)
        {
            settle = Task.FromException(ex);
        }

        _ = settle.ContinueWith(
            static (t, state) =>
            {
                // The spend still reaches the database through the ledger below; the reservation expires with its lease (1 h).
                ((RedisLimiter)state!).Unavailable(t.Exception!.GetBaseException(), "settlement not shared (the store still gets it)");
            },
            this,
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

        // This instance's share of the spend is saved by the spend ledger, as with the in-memory limiter.
        key.Runtime.AddUnsaved(key.Id, today, actualCost, key.Record.CreditBalance is not null, _spill);
    }

    /// <summary>Puts a key's persisted spend and balance into Redis unless another instance already did (SET NX).</summary>
    public async Task SeedAsync(KeyEntry key, KeySpend? spend, CancellationToken cancellationToken)
    {
        var today = _calendar.Today(_time.GetUtcNow());
        var keys = Keys(key.Id, today);
        var db = _redis.GetDatabase();
        var batch = db.CreateBatch();
        var tasks = new List<Task>
        {
            batch.StringSetAsync(keys[4], ToNanos(spend?.Today ?? 0m), TimeSpan.FromDays(2), When.NotExists),
            batch.StringSetAsync(keys[5], ToNanos(spend?.ThisMonth ?? 0m), TimeSpan.FromDays(40), When.NotExists),
            batch.StringSetAsync(keys[6], ToNanos(spend?.Total ?? 0m), null, When.NotExists),
        };
        if (key.Record.CreditBalance is { } credit)
        {
            tasks.Add(batch.StringSetAsync(keys[7], ToNanos(credit), null, When.NotExists));
        }

        batch.Execute();
        await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    /// <summary>Adds credit in Redis (after the database); starts the balance when the key had none. Returns the new balance.</summary>
    public async Task<decimal> TopUpAsync(string keyId, decimal amount) =>
        await _redis.GetDatabase().StringIncrementAsync($"{_prefix}:{{{keyId}}}:credit", ToNanos(amount)).ConfigureAwait(false) / Nanos;

    /// <summary>Replaces the shared balance (an update set a credit limit), or removes it (the limit was removed).</summary>
    public Task SetCreditAsync(string keyId, decimal? balance)
    {
        var key = (RedisKey)$"{_prefix}:{{{keyId}}}:credit";
        return balance is { } value
            ? _redis.GetDatabase().StringSetAsync(key, ToNanos(value))
            : _redis.GetDatabase().KeyDeleteAsync(key);
    }

    // KEYS: as the acquire script. ARGV: 1 now ms. Read only.
    private const string ReadScript = """
        local now = tonumber(ARGV[1])
        local inflight = redis.call('ZCARD', KEYS[1])
        local requests = redis.call('ZCOUNT', KEYS[2], '(' .. (now - 60000), '+inf')
        local tokens = 0
        local second = math.floor(now / 1000)
        local h = redis.call('HGETALL', KEYS[3])
        for i = 1, #h, 2 do
          if tonumber(h[i]) > second - 60 then tokens = tokens + tonumber(h[i + 1]) end
        end
        local reserved = 0
        local r = redis.call('HVALS', KEYS[4])
        for i = 1, #r do reserved = reserved + tonumber(r[i]) end
        return {inflight, requests, tokens, reserved, redis.call('GET', KEYS[5]) or '0', redis.call('GET', KEYS[6]) or '0',
          redis.call('GET', KEYS[7]) or '0', redis.call('GET', KEYS[8]) or ''}
        """;

    /// <summary>A key's live counters across every instance (admin API): one read-only script.</summary>
    public async Task<KeyRuntimeSnapshot> ReadLiveAsync(KeyEntry key)
    {
        var now = _time.GetUtcNow();
        var today = _calendar.Today(now);
        var values = (RedisResult[])(await _redis.GetDatabase().ScriptEvaluateAsync(ReadScript, Keys(key.Id, today), [now.ToUnixTimeMilliseconds()]).ConfigureAwait(false))!;
        static decimal Usd(RedisResult v) => long.Parse((string)v!, CultureInfo.InvariantCulture) / Nanos;
        var credit = (string?)values[7];
        return new KeyRuntimeSnapshot(
            (int)values[0],
            (int)values[1],
            (long)values[2],
            today,
            Usd(values[4]),
            Usd(values[5]),
            Usd(values[6]),
            (long)values[3] / Nanos,
            key.Record.CreditBalance is null || string.IsNullOrEmpty(credit) ? null : long.Parse(credit, CultureInfo.InvariantCulture) / Nanos);
    }

    /// <summary>The shared live counters of a key (admin usage endpoint).</summary>
    public async Task<(decimal Today, decimal Month, decimal Total, decimal? Credit)> ReadSpendAsync(KeyEntry key)
    {
        var keys = Keys(key.Id, _calendar.Today(_time.GetUtcNow()));
        var values = await _redis.GetDatabase().StringGetAsync([keys[4], keys[5], keys[6], keys[7]]).ConfigureAwait(false);
        static decimal Usd(RedisValue v) => v.IsNull ? 0m : (long)v / Nanos;
        return (Usd(values[0]), Usd(values[1]), Usd(values[2]), values[3].IsNull ? null : (long)values[3] / Nanos);
    }

    private RedisKey[] Keys(string keyId, DateOnly today)
    {
        // One hash tag per key: every key of one virtual key lives in one cluster slot, so the script may touch them all.
        var tag = $"{_prefix}:{{{keyId}}}";
        return
        [
            $"{tag}:inflight",
            $"{tag}:rpm",
            $"{tag}:tpm",
            $"{tag}:reserved",
            $"{tag}:spend:d:{today.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)}",
            $"{tag}:spend:m:{today.ToString("yyyy-MM", CultureInfo.InvariantCulture)}",
            $"{tag}:spend:total",
            $"{tag}:credit",
        ];
    }

    /// <summary>Marks the degradation and logs it — at most once per 10 s, so an outage does not log once per request.</summary>
    private void Unavailable(Exception exception, string action)
    {
        Degraded = true;
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastLogged);
        if (now - last >= 10_000 && Interlocked.CompareExchange(ref _lastLogged, now, last) == last)
        {
            LogUnavailable(_logger, exception.GetType().Name, action);
        }
    }

    private static long Limit(decimal? usd) => usd is { } value ? ToNanos(value) : -1;

    internal static long ToNanos(decimal usd) => (long)decimal.Round(usd * Nanos, 0, MidpointRounding.ToPositiveInfinity);

    private static GatewayError Limited(string message, string type, TimeSpan retryAfter) =>
        new(429, message, type, "rate_limit_exceeded") { RetryAfter = retryAfter };

    private static GatewayError Quota(string message, TimeSpan? retryAfter) =>
        new(429, message, "insufficient_quota", "insufficient_quota") { RetryAfter = retryAfter };

    [LoggerMessage(EventId = 60, Level = LogLevel.Warning, Message = "Redis unavailable ({Error}): {Action}")]
    private static partial void LogUnavailable(ILogger logger, string error, string action);
}
