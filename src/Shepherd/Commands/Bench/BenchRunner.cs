namespace Shepherd.Cli.Commands.Bench;

using System.Collections.Concurrent;
using System.Diagnostics;

/// <summary>
/// Runs one model closed-loop: <c>concurrency</c> workers, each sending its next request as soon as the previous one
/// ended, until the request count is reached or the duration is over (requests in flight then still finish and count).
/// </summary>
/// <remarks>
/// A refusal that every further request would meet as well (400, 401, 403, 404, 422: unknown model, bad key, bad
/// prompt) stops the run after the requests already in flight; the first such error is reported as bad usage.
/// </remarks>
internal sealed class BenchRunner(BenchClient client, BenchSettings settings, string model)
{
    private readonly ConcurrentQueue<BenchSample> _samples = new();

    private int _issued;

    private int _completed;

    private int _errors;

    private volatile bool _stopped;

    private BenchSample? _fatal;

    private long _start;

    public string Model => model;

    /// <summary>Requests finished so far (for progress).</summary>
    public int Completed => Volatile.Read(ref _completed);

    /// <summary>Requests failed so far (for progress).</summary>
    public int Errors => Volatile.Read(ref _errors);

    /// <summary>Time since the run started (for progress); zero before.</summary>
    public TimeSpan Elapsed => _start == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(_start);

    /// <summary>The first error that stopped the run, if one did.</summary>
    public BenchSample? Fatal => Volatile.Read(ref _fatal);

    public static bool IsFatal(BenchSample sample) => sample.ErrorStatus is "400" or "401" or "403" or "404" or "422";

    /// <summary>Runs to the end (or until <paramref name="cancellationToken"/>, keeping what completed).</summary>
    public async Task<BenchRun> RunAsync(CancellationToken cancellationToken)
    {
        var body = BenchClient.RequestBody(settings, model);
        var startedAt = DateTimeOffset.UtcNow;
        _start = Stopwatch.GetTimestamp();
        var deadline = settings.Duration is { } duration ? _start + (long)(duration.TotalSeconds * Stopwatch.Frequency) : long.MaxValue;
        var workers = settings.Duration is null ? Math.Min(settings.Concurrency, settings.Requests) : settings.Concurrency;
        var tasks = new Task[workers];
        for (var i = 0; i < workers; i++)
        {
            tasks[i] = Task.Run(() => WorkAsync(body, deadline, cancellationToken), CancellationToken.None);
        }

        await Task.WhenAll(tasks);
        var wall = Stopwatch.GetElapsedTime(_start);
        var samples = _samples.OrderBy(s => s.StartMs).ToList();
        return new BenchRun(model, samples, wall, startedAt, interrupted: cancellationToken.IsCancellationRequested, Fatal);
    }

    private async Task WorkAsync(byte[] body, long deadline, CancellationToken cancellationToken)
    {
        while (!_stopped && !cancellationToken.IsCancellationRequested)
        {
            if (settings.Duration is null ? Interlocked.Increment(ref _issued) > settings.Requests : Stopwatch.GetTimestamp() >= deadline)
            {
                return;
            }

            BenchSample sample;
            try
            {
                sample = await client.SendAsync(body, settings.Stream, _start, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Interrupted: a request cut short measures nothing.
                return;
            }

            _samples.Enqueue(sample);
            if (!sample.Ok)
            {
                Interlocked.Increment(ref _errors);
                if (IsFatal(sample))
                {
                    Interlocked.CompareExchange(ref _fatal, sample, null);
                    _stopped = true;
                }
            }

            Interlocked.Increment(ref _completed);
        }
    }
}
