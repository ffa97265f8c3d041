namespace Shepherd.Testing;

using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

/// <summary>A request as the fake upstream received it.</summary>
public sealed record RecordedRequest(string Method, string Path, string Query, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string BodyText => System.Text.Encoding.UTF8.GetString(Body);

    /// <summary>When the request arrived, by the fake's <see cref="FakeUpstream.Clock"/>.</summary>
    public DateTimeOffset ReceivedAt { get; init; }

    /// <summary>The bearer key it carried (empty when none).</summary>
    public string BearerKey => Headers.TryGetValue("authorization", out var value) && value.StartsWith("Bearer ", StringComparison.Ordinal) ? value[7..] : "";

    public System.Text.Json.JsonDocument Json() => System.Text.Json.JsonDocument.Parse(Body);
}

/// <summary>
/// A real Kestrel server on 127.0.0.1:0 standing in for a provider. The handler decides the answer; the fake
/// records every request and notices when the gateway cancels one (the client-disconnect tests watch this).
/// </summary>
public sealed class FakeUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _cancelled;
    private int _started;

    private FakeUpstream(WebApplication app)
    {
        _app = app;
    }

    public string BaseUrl { get; private set; } = "";

    /// <summary>Stamps <see cref="RecordedRequest.ReceivedAt"/> (tests with a fake clock set theirs here).</summary>
    public TimeProvider Clock { get; set; } = TimeProvider.System;

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    /// <summary>Requests whose connection the gateway aborted before the fake finished answering.</summary>
    public int CancelledCount => Volatile.Read(ref _cancelled);

    /// <summary>Requests that reached the handler.</summary>
    public int StartedCount => Volatile.Read(ref _started);

    /// <summary>Completes each time a request is cancelled by the gateway.</summary>
    public SemaphoreSlim Cancellations { get; } = new(0);

    public static async Task<FakeUpstream> StartAsync(Func<HttpContext, RecordedRequest, Task> handler)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = null);
        var app = builder.Build();
        var fake = new FakeUpstream(app);
        app.Run(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            var headers = context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString());
            var recorded = new RecordedRequest(context.Request.Method, context.Request.Path, context.Request.QueryString.Value ?? "", headers, body.ToArray())
            {
                ReceivedAt = fake.Clock.GetUtcNow(),
            };
            fake.Requests.Enqueue(recorded);
            Interlocked.Increment(ref fake._started);
            try
            {
                await handler(context, recorded);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
            }
            catch (IOException) when (context.RequestAborted.IsCancellationRequested)
            {
            }
            finally
            {
                if (context.RequestAborted.IsCancellationRequested)
                {
                    Interlocked.Increment(ref fake._cancelled);
                    fake.Cancellations.Release();
                }
            }
        });
        await app.StartAsync();
        fake.BaseUrl = app.Urls.First();
        return fake;
    }

    /// <summary>Waits until the gateway has cancelled <paramref name="count"/> requests, or fails after the timeout.</summary>
    public async Task WaitForCancellationsAsync(int count = 1, int timeoutMs = 10_000)
    {
        for (var i = 0; i < count; i++)
        {
            if (!await Cancellations.WaitAsync(timeoutMs))
            {
                throw new TimeoutException($"The upstream saw {CancelledCount} cancellation(s), expected {count}.");
            }
        }
    }

    public RecordedRequest LastRequest => Requests.Last();

    public async ValueTask DisposeAsync()
    {
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(1)))
        {
            await _app.StopAsync(stop.Token);
        }

        await _app.DisposeAsync();
    }
}
