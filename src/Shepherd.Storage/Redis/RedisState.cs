namespace Shepherd.Storage.Redis;

using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Shepherd.Configuration;
using StackExchange.Redis;

/// <summary>
/// The connection to the Redis that several instances share, and what keeps this instance in step with it: after
/// (re)connecting it runs every registered resync (subscribe, read the shared breaker and key state, reload keys),
/// and while Redis is unreachable it runs the registered fallbacks (e.g. polling the store for key changes).
/// </summary>
/// <remarks>Nothing here throws when Redis is down: every user degrades to local behaviour, and readiness reports
/// <c>state: degraded</c> (the instance keeps serving).</remarks>
public sealed partial class RedisState : BackgroundService
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan PollWhileDown = TimeSpan.FromSeconds(5);

    private readonly List<(string Name, Func<CancellationToken, Task> Run)> _resyncs = [];
    private readonly List<(string Name, Func<CancellationToken, Task> Run)> _fallbacks = [];
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _syncing = new(1, 1);
    private volatile bool _synced;
    private long _lastFailureTicks;

    public RedisState(IConnectionMultiplexer connection, StateConfig settings, TimeProvider time, ILogger<RedisState> logger)
    {
        Connection = connection;
        Prefix = settings.Prefix;
        FailOpen = settings.FailOpen;
        _time = time;
        _logger = logger;
        connection.ConnectionFailed += (_, e) =>
        {
            // Messages published meanwhile are lost: everything is read again once the connection is back.
            _synced = false;
            LogConnectionFailed(_logger, e.FailureType.ToString());
        };
        connection.ConnectionRestored += (_, _) =>
        {
            _synced = false;
            LogConnectionRestored(_logger);
        };
    }

    public IConnectionMultiplexer Connection { get; }

    public string Prefix { get; }

    public bool FailOpen { get; }

    /// <summary>Identifies this process in shared state (probe slots, leases).</summary>
    public string Instance { get; } = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>Connected, in step (subscribed and resynced) and no command failed in the last few seconds.</summary>
    public bool Healthy =>
        _synced && Connection.IsConnected && _time.GetUtcNow().UtcTicks - Interlocked.Read(ref _lastFailureTicks) > TimeSpan.TicksPerSecond * 5;

    public RedisChannel Channel(string name) => RedisChannel.Literal($"{Prefix}:{name}");

    /// <summary>Runs after every (re)connection, until it succeeds: subscribe, read shared state, catch up.</summary>
    public void OnResync(string name, Func<CancellationToken, Task> resync) => _resyncs.Add((name, resync));

    /// <summary>Runs every few seconds while Redis is unreachable (e.g. reload keys from the store instead of waiting for notices).</summary>
    public void WhileUnavailable(string name, Func<CancellationToken, Task> fallback) => _fallbacks.Add((name, fallback));

    /// <summary>A command failed: readiness shows the degradation for a few seconds, and the next tick resyncs.</summary>
    public void ReportFailure(string what, Exception exception)
    {
        var now = _time.GetUtcNow().UtcTicks;
        var last = Interlocked.Exchange(ref _lastFailureTicks, now);
        if (now - last > TimeSpan.TicksPerSecond * 5)
        {
            // At most one warning per 5 s: an outage must not flood the log.
            LogCommandFailed(_logger, what, exception.GetType().Name, exception.Message);
        }
    }

    /// <summary>Readiness: answers PING within a second and is in step.</summary>
    public async Task<bool> CheckAsync(CancellationToken cancellationToken)
    {
        if (!Connection.IsConnected || !_synced)
        {
            return false;
        }

        try
        {
            await Connection.GetDatabase().PingAsync().WaitAsync(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
            return Healthy;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return false;
        }
    }

    /// <summary>Runs the resyncs now if needed (start-up, tests).</summary>
    public async Task<bool> SyncAsync(CancellationToken cancellationToken)
    {
        if (_synced)
        {
            return true;
        }

        // The subscription has a connection of its own that can come up after the first: until it is, subscribing
        // would only fail (and warn); the next tick tries again.
        if (!Connection.IsConnected || !Connection.GetSubscriber().IsConnected())
        {
            return false;
        }

        await _syncing.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_synced)
            {
                return true;
            }

            // Marked first: a connection failure during the resync clears it again, so nothing missed is kept.
            _synced = true;
            foreach (var (name, resync) in _resyncs)
            {
                try
                {
                    await resync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    _synced = false;
                    ReportFailure(name, ex);
                    return false;
                }
            }

            LogSynced(_logger);
            return _synced;
        }
        finally
        {
            _syncing.Release();
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var lastFallback = DateTimeOffset.MinValue;
        using var timer = new PeriodicTimer(Tick, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                if (await SyncAsync(stoppingToken).ConfigureAwait(false))
                {
                    continue;
                }

                var now = _time.GetUtcNow();
                if (now - lastFallback < PollWhileDown)
                {
                    continue;
                }

                lastFallback = now;
                foreach (var (name, fallback) in _fallbacks)
                {
                    try
                    {
                        await fallback(stoppingToken).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        LogFallbackFailed(_logger, name, ex.GetType().Name);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Options for <c>state.redis</c>: <c>redis://[user:password@]host:port[/db]</c> (<c>rediss://</c> for TLS; a user
    /// info without a colon is the password) or a StackExchange.Redis configuration string. Timeouts suit a hot
    /// path (a stalled Redis fails over in about a second) unless the string sets them.
    /// </summary>
    public static ConfigurationOptions Options(string redis)
    {
        ConfigurationOptions options;
        if (redis.StartsWith("redis://", StringComparison.OrdinalIgnoreCase) || redis.StartsWith("rediss://", StringComparison.OrdinalIgnoreCase))
        {
            var uri = new Uri(redis);
            options = new ConfigurationOptions { Ssl = uri.Scheme.Equals("rediss", StringComparison.OrdinalIgnoreCase) };
            options.EndPoints.Add(uri.Host.Trim('[', ']'), uri.IsDefaultPort || uri.Port <= 0 ? 6379 : uri.Port);
            if (uri.UserInfo.Length > 0)
            {
                var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
                if (colon < 0)
                {
                    options.Password = Uri.UnescapeDataString(uri.UserInfo);
                }
                else
                {
                    var user = Uri.UnescapeDataString(uri.UserInfo[..colon]);
                    options.User = user.Length > 0 ? user : null;
                    options.Password = Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
                }
            }

            if (uri.AbsolutePath.Trim('/') is { Length: > 0 } db)
            {
                options.DefaultDatabase = int.Parse(db, System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        else
        {
            options = ConfigurationOptions.Parse(redis);
        }

        bool Set(string name) => redis.Contains(name, StringComparison.OrdinalIgnoreCase);
        options.AbortOnConnectFail = false;
        options.ClientName ??= "shepherd";
        if (!Set("connectTimeout"))
        {
            options.ConnectTimeout = 2000;
        }

        if (!Set("syncTimeout"))
        {
            options.SyncTimeout = 1000;
        }

        if (!Set("asyncTimeout"))
        {
            options.AsyncTimeout = 1000;
        }

        options.ReconnectRetryPolicy ??= new LinearRetry(1000);

        // While disconnected, fail at once (and fall back) rather than queue each command until its timeout.
        options.BacklogPolicy = BacklogPolicy.FailFast;
        return options;
    }

    [LoggerMessage(EventId = 61, Level = LogLevel.Warning, Message = "Shared state (Redis) connection failed ({Failure}): limits, breakers and key changes fall back to this instance until it is back")]
    private static partial void LogConnectionFailed(ILogger logger, string failure);

    [LoggerMessage(EventId = 62, Level = LogLevel.Information, Message = "Shared state (Redis) connection restored; resynchronising")]
    private static partial void LogConnectionRestored(ILogger logger);

    [LoggerMessage(EventId = 63, Level = LogLevel.Information, Message = "Shared state (Redis) in step: subscribed, breakers and keys resynchronised")]
    private static partial void LogSynced(ILogger logger);

    [LoggerMessage(EventId = 64, Level = LogLevel.Warning, Message = "Shared state (Redis) {What} failed ({Error}: {Message}); carrying on with local state")]
    private static partial void LogCommandFailed(ILogger logger, string what, string error, string message);

    [LoggerMessage(EventId = 65, Level = LogLevel.Warning, Message = "Fallback '{Name}' while shared state is unavailable failed ({Error})")]
    private static partial void LogFallbackFailed(ILogger logger, string name, string error);
}
