namespace Shepherd.Resilience;

using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Shepherd.Configuration;
using Shepherd.Providers;
using Shepherd.Routing;

/// <summary>
/// Re-admits upstream keys that were taken out after a 401/403: every <c>health_probe_interval_s</c> each such key is
/// probed with a cheap request (the provider's models endpoint); when it works again, it serves traffic again.
/// A provider without a probe gets its keys back after one interval, to be judged by real traffic.
/// </summary>
public sealed partial class KeyProber(
    IReadOnlyDictionary<string, ProviderHandle> providers,
    ShepherdConfig config,
    TimeProvider time,
    ILogger<KeyProber> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = config.Routing.HealthProbeIntervalS;
        if (interval <= 0)
        {
            return;
        }

        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(interval), time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await ProbeDeadKeysAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Probes every key that is out now (also called by tests).</summary>
    public async Task ProbeDeadKeysAsync(CancellationToken cancellationToken)
    {
        foreach (var handle in providers.Values)
        {
            foreach (var key in handle.Keys.Keys)
            {
                if (!key.IsDead)
                {
                    continue;
                }

                if (handle.Provider is not IProviderProbe probe)
                {
                    key.Readmit();
                    continue;
                }

                var failure = await probe.ProbeAsync(key.Secret, cancellationToken).ConfigureAwait(false);
                if (failure is null)
                {
                    key.Readmit();
                    LogReadmitted(logger, key.Id);
                }
                else
                {
                    LogStillOut(logger, key.Id, failure.UpstreamStatus);
                }
            }
        }
    }

    [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "Upstream key {KeyId} answered its health probe: back in service")]
    private static partial void LogReadmitted(ILogger logger, string keyId);

    [LoggerMessage(EventId = 31, Level = LogLevel.Warning, Message = "Upstream key {KeyId} is still refused (health probe answered {Status})")]
    private static partial void LogStillOut(ILogger logger, string keyId, int status);
}
