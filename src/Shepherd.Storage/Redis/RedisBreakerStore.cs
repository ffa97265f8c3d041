namespace Shepherd.Storage.Redis;

using System.Collections.Concurrent;
using System.Globalization;
using Shepherd.Configuration;
using Shepherd.Resilience;
using Shepherd.Routing;
using StackExchange.Redis;

/// <summary>
/// Breakers and upstream-key health shared by every instance, without Redis on the success path: each breaker
/// decides locally (<see cref="CircuitBreaker"/>); failures are also counted in Redis (one small script), and when
/// they reach <c>consecutive_failures</c> across instances — or this instance's breaker opens on its own — the
/// opening is recorded and published, and every instance opens its breaker until the same time. After the cooldown
/// one probe is allowed across all instances (a slot claimed with SET NX PX); its success closes the breaker
/// everywhere. Upstream keys taken out after a 401/403 are shared the same way.
/// </summary>
/// <remarks>
/// Redis keys, all with the hash tag <c>{breakers}</c> (one cluster slot): <c>…:open</c> (hash: breaker → open-until
/// ms), <c>…:fails:ID</c> (failures in a row, expiring after the breaker window), <c>…:probe:ID</c> (the probe slot),
/// <c>…:dead</c> (hash: upstream key → out-since ms). Messages on <c>{prefix}:breakers</c>: <c>open UNTIL ID</c>,
/// <c>close 0 ID</c>, <c>dead SINCE KEY</c>, <c>alive 0 KEY</c>. When Redis is unavailable every breaker simply
/// works locally; the shared state is read again when it is back.
/// </remarks>
public sealed class RedisBreakerStore : IBreakerStore, IUpstreamKeyHealth
{
    public const string ChannelName = "breakers";

    // KEYS: 1 fails, 2 open hash, 3 probe. ARGV: 1 id, 2 threshold, 3 window ms, 4 open-until ms, 5 force, 6 channel, 7 now ms
    private const string FailureScript = """
        local current = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
        if current > tonumber(ARGV[7]) then
          redis.call('DEL', KEYS[1])
          return 0
        end
        local n = redis.call('INCR', KEYS[1])
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        if ARGV[5] == '1' or n >= tonumber(ARGV[2]) then
          redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
          redis.call('DEL', KEYS[1], KEYS[3])
          redis.call('PUBLISH', ARGV[6], 'open ' .. ARGV[4] .. ' ' .. ARGV[1])
          return 1
        end
        return 0
        """;

    // KEYS: 1 open hash, 2 fails, 3 probe. ARGV: 1 id, 2 channel
    private const string CloseScript = """
        redis.call('DEL', KEYS[2], KEYS[3])
        redis.call('HDEL', KEYS[1], ARGV[1])
        redis.call('PUBLISH', ARGV[2], 'close 0 ' .. ARGV[1])
        return 1
        """;

    // KEYS: 1 dead hash. ARGV: 1 key id, 2 since ms (0: re-admitted), 3 channel
    private const string KeyHealthScript = """
        if ARGV[2] == '0' then
          redis.call('HDEL', KEYS[1], ARGV[1])
          redis.call('PUBLISH', ARGV[3], 'alive 0 ' .. ARGV[1])
        else
          redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
          redis.call('PUBLISH', ARGV[3], 'dead ' .. ARGV[2] .. ' ' .. ARGV[1])
        end
        return 1
        """;

    private readonly RedisState _state;
    private readonly BreakerConfig _settings;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, SharedCircuitBreaker> _breakers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, UpstreamKey> _keys = new(StringComparer.Ordinal);
    private readonly string _tag;
    private readonly RedisChannel _channel;
    private readonly TimeSpan _probeSlot;
    private ChannelMessageQueue? _queue;
    private long _commands;

    public RedisBreakerStore(RedisState state, BreakerConfig settings, TimeProvider time)
    {
        _state = state;
        _settings = settings;
        _time = time;
        _tag = $"{state.Prefix}:{{breakers}}";
        _channel = state.Channel(ChannelName);
        _probeSlot = TimeSpan.FromSeconds(Math.Clamp(settings.CooldownS, 5, 60));
        state.OnResync("breakers", ResyncAsync);
    }

    internal RedisState State => _state;

    /// <summary>Commands sent to Redis so far (the success path of a healthy breaker sends none).</summary>
    internal long Commands => Interlocked.Read(ref _commands);

    public IEnumerable<KeyValuePair<string, ICircuitBreaker>> All =>
        _breakers.Select(p => new KeyValuePair<string, ICircuitBreaker>(p.Key, p.Value));

    public ICircuitBreaker Get(string id) => Breaker(id);

    public void Register(UpstreamKey key) => _keys[key.Id] = key;

    public void Changed(UpstreamKey key, DateTimeOffset? deadSince) =>
        Run("sharing an upstream key's health", db => db.ScriptEvaluateAsync(
            KeyHealthScript,
            [$"{_tag}:dead"],
            [key.Id, deadSince is { } since ? Math.Max(1, since.ToUnixTimeMilliseconds()) : 0, _channel.ToString()]));

    internal SharedCircuitBreaker Breaker(string id) =>
        _breakers.GetOrAdd(id, static (id, store) => new SharedCircuitBreaker(id, new CircuitBreaker(store._settings), store), this);

    /// <summary>A failure seen here: counted across instances; opens everywhere at the threshold or when <paramref name="opened"/> here.</summary>
    internal void RecordFailure(string id, DateTimeOffset now, bool opened)
    {
        var until = now + TimeSpan.FromSeconds(_settings.CooldownS);
        Run("counting a breaker failure", db => db.ScriptEvaluateAsync(
            FailureScript,
            [$"{_tag}:fails:{id}", $"{_tag}:open", $"{_tag}:probe:{id}"],
            [id, _settings.ConsecutiveFailures, Math.Max(1000, _settings.WindowS * 1000L), until.ToUnixTimeMilliseconds(), opened ? "1" : "0", _channel.ToString(), now.ToUnixTimeMilliseconds()]));
    }

    /// <summary>This instance closed the breaker (its probe, or any request while half-open, succeeded): closed everywhere.</summary>
    internal void RecordClosed(string id) =>
        Run("closing a shared breaker", db => db.ScriptEvaluateAsync(CloseScript, [$"{_tag}:open", $"{_tag}:fails:{id}", $"{_tag}:probe:{id}"], [id, _channel.ToString()]));

    /// <summary>A success after failures: the failures in a row across instances start again from zero.</summary>
    internal void ResetFailures(string id) => Run("resetting breaker failures", db => db.KeyDeleteAsync($"{_tag}:fails:{id}"));

    internal void ReleaseProbe(string id) => Run("releasing a probe slot", db => db.KeyDeleteAsync($"{_tag}:probe:{id}"));

    /// <summary>Claims the one probe all instances may send after the cooldown (rare: once per cooldown per breaker).</summary>
    /// <returns>True when this instance may probe (also when Redis does not answer: then every instance decides alone).</returns>
    internal bool TryClaimProbe(string id)
    {
        Interlocked.Increment(ref _commands);
        try
        {
            return _state.Connection.GetDatabase().StringSet($"{_tag}:probe:{id}", _state.Instance, _probeSlot, When.NotExists);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _state.ReportFailure("claiming a probe slot", ex);
            return true;
        }
    }

    /// <summary>Applies one message from another instance (or this one: applying it again changes nothing).</summary>
    internal void Apply(string message)
    {
        var parts = message.Split(' ', 3);
        if (parts.Length != 3 || !long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var ms))
        {
            return;
        }

        var at = DateTimeOffset.FromUnixTimeMilliseconds(ms);
        switch (parts[0])
        {
            case "open":
                Breaker(parts[2]).Local.ForceOpen(at);
                break;
            case "close":
                Breaker(parts[2]).Local.ForceClose();
                break;
            case "dead" when _keys.TryGetValue(parts[2], out var dead):
                dead.ApplyShared(at);
                break;
            case "alive" when _keys.TryGetValue(parts[2], out var alive):
                alive.ApplyShared(null);
                break;
        }
    }

    private async Task ResyncAsync(CancellationToken cancellationToken)
    {
        if (_queue is null)
        {
            _queue = await _state.Connection.GetSubscriber().SubscribeAsync(_channel).ConfigureAwait(false);
            _queue.OnMessage(message =>
            {
                if ((string?)message.Message is { } text)
                {
                    Apply(text);
                }
            });
        }

        // Openings and keys taken out while this instance was away (or before it started).
        var db = _state.Connection.GetDatabase();
        foreach (var entry in await db.HashGetAllAsync($"{_tag}:open").ConfigureAwait(false))
        {
            Apply($"open {entry.Value} {entry.Name}");
        }

        foreach (var entry in await db.HashGetAllAsync($"{_tag}:dead").ConfigureAwait(false))
        {
            Apply($"dead {entry.Value} {entry.Name}");
        }
    }

    private void Run(string what, Func<IDatabase, Task> command)
    {
        Interlocked.Increment(ref _commands);
        Task task;
        try
        {
            task = command(_state.Connection.GetDatabase());
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _state.ReportFailure(what, ex);
            return;
        }

        // Off the request path: the breaker already decided locally; a failure here only leaves the others unaware.
        task.ContinueWith(
            (t, s) => ((RedisState)s!).ReportFailure(what, t.Exception!.GetBaseException()),
            _state,
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }
}

/// <summary>A breaker whose decisions are local and whose openings and closings are shared (see <see cref="RedisBreakerStore"/>).</summary>
internal sealed class SharedCircuitBreaker(string id, CircuitBreaker local, RedisBreakerStore store) : ICircuitBreaker
{
    public CircuitBreaker Local => local;

    public bool TryPass(DateTimeOffset now, out bool isProbe)
    {
        if (!local.TryPass(now, out isProbe))
        {
            return false;
        }

        if (!isProbe || store.TryClaimProbe(id))
        {
            return true;
        }

        // Another instance is probing: this one waits for its verdict.
        local.OnAbandoned(wasProbe: true);
        isProbe = false;
        return false;
    }

    public bool IsAvailable(DateTimeOffset now) => local.IsAvailable(now);

    public void OnSuccess(DateTimeOffset now, bool wasProbe)
    {
        var closedBefore = local.State == BreakerState.Closed;
        var failuresBefore = local.ConsecutiveFailures;
        local.OnSuccess(now, wasProbe);
        if (wasProbe || !closedBefore)
        {
            store.RecordClosed(id);
        }
        else if (failuresBefore > 0)
        {
            store.ResetFailures(id);
        }
    }

    public void OnFailure(DateTimeOffset now, bool wasProbe)
    {
        var before = local.State;
        local.OnFailure(now, wasProbe);
        store.RecordFailure(id, now, opened: local.State == BreakerState.Open && (before != BreakerState.Open || wasProbe));
    }

    public void OnAbandoned(bool wasProbe)
    {
        local.OnAbandoned(wasProbe);
        if (wasProbe)
        {
            store.ReleaseProbe(id);
        }
    }

    public BreakerSnapshot Snapshot(DateTimeOffset now) => local.Snapshot(now);
}
