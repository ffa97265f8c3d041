namespace Shepherd.Storage.Redis;

using Microsoft.Extensions.Logging;
using Shepherd.Keys;
using Shepherd.Limits;
using StackExchange.Redis;

/// <summary>
/// Keys across instances, over Redis: the shared counters live in the <see cref="RedisLimiter"/>'s keys (seeded from
/// the store, topped up after it), and a change of a key is announced on the <c>{prefix}:keys</c> channel (its id),
/// after the store was written, for every instance to reload it (<see cref="RedisKeyChanges"/>).
/// </summary>
public sealed class RedisKeySharing(RedisState state, RedisLimiter limiter) : IKeySharing
{
    public async Task SeedAsync(KeyEntry key, KeySpend? spend, CancellationToken cancellationToken)
    {
        try
        {
            await limiter.SeedAsync(key, spend, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            state.ReportFailure("seeding key counters", ex);
        }
    }

    public async Task ResetCreditAsync(KeyEntry key, decimal? balance, CancellationToken cancellationToken)
    {
        try
        {
            await limiter.SetCreditAsync(key.Id, balance).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            state.ReportFailure("setting a credit balance", ex);
        }
    }

    public async Task<decimal?> TopUpAsync(KeyEntry key, decimal amount, CancellationToken cancellationToken)
    {
        // A top-up is money: it is retried a few times before giving up (the store has it either way, and a key
        // seeded afresh from the store after a Redis restart includes it).
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await limiter.TopUpAsync(key.Id, amount).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                state.ReportFailure("topping up a shared balance", ex);
                if (attempt == 2)
                {
                    return null;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(200 * (attempt + 1)), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    public async Task<KeyRuntimeSnapshot?> ReadLiveAsync(KeyEntry key, CancellationToken cancellationToken)
    {
        try
        {
            return await limiter.ReadLiveAsync(key).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            state.ReportFailure("reading key counters", ex);
            return null;
        }
    }

    public async Task PublishChangedAsync(string keyId, CancellationToken cancellationToken)
    {
        try
        {
            await state.Connection.GetSubscriber().PublishAsync(state.Channel(RedisKeyChanges.ChannelName), keyId).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The others poll the store while they cannot reach Redis either, and reload everything when it is back.
            state.ReportFailure("announcing a key change", ex);
        }
    }
}

/// <summary>
/// Applies key changes made on other instances: every id announced on <c>{prefix}:keys</c> is reloaded from the store
/// (within milliseconds of the change). After Redis was unreachable (notices may have been missed) every key is
/// reloaded and the shared counters re-seeded; while it is unreachable, the store is polled every few seconds.
/// </summary>
public sealed partial class RedisKeyChanges
{
    public const string ChannelName = "keys";

    private readonly RedisState _state;
    private readonly KeyService _keys;
    private readonly ILogger _logger;
    private ChannelMessageQueue? _queue;

    public RedisKeyChanges(RedisState state, KeyService keys, ILogger<RedisKeyChanges> logger)
    {
        _state = state;
        _keys = keys;
        _logger = logger;
        state.OnResync("key changes", ResyncAsync);
        state.WhileUnavailable("key reload from the store", keys.ReloadAllAsync);
    }

    private async Task ResyncAsync(CancellationToken cancellationToken)
    {
        if (_queue is null)
        {
            // Subscribed once: the client re-subscribes by itself after a reconnection.
            _queue = await _state.Connection.GetSubscriber().SubscribeAsync(_state.Channel(ChannelName)).ConfigureAwait(false);
            _queue.OnMessage(OnMessageAsync);
        }

        await _keys.ReloadAllAsync(cancellationToken).ConfigureAwait(false);
        await _keys.SeedAllAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task OnMessageAsync(ChannelMessage message)
    {
        var id = (string?)message.Message;
        if (string.IsNullOrEmpty(id))
        {
            return;
        }

        try
        {
            await _keys.ReloadAsync(id, CancellationToken.None).ConfigureAwait(false);
            LogReloaded(_logger, id);
        }
        catch (Exception ex)
        {
            // The store did not answer: the next full reload (resync or poll) catches up.
            LogReloadFailed(_logger, id, ex.GetType().Name);
        }
    }

    [LoggerMessage(EventId = 66, Level = LogLevel.Debug, Message = "Key {KeyId} changed on another instance: reloaded from the store")]
    private static partial void LogReloaded(ILogger logger, string keyId);

    [LoggerMessage(EventId = 67, Level = LogLevel.Warning, Message = "Key {KeyId} changed on another instance but could not be reloaded ({Error})")]
    private static partial void LogReloadFailed(ILogger logger, string keyId, string error);
}
