namespace Shepherd.LoadTest;

using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;

/// <summary>Latency samples of a run, in microseconds, with the numbers the report needs.</summary>
public sealed record RunResult(string Name, int Requests, int Errors, double Seconds, long[] LatenciesUs)
{
    public double RequestsPerSecond => Requests / Seconds;

    public double Percentile(double p)
    {
        if (LatenciesUs.Length == 0)
        {
            return double.NaN;
        }

        var index = (int)Math.Clamp(Math.Ceiling(p / 100 * LatenciesUs.Length) - 1, 0, LatenciesUs.Length - 1);
        return LatenciesUs[index] / 1000.0;
    }
}

/// <summary>Closed-loop (fixed concurrency) and open-loop (fixed rate) HTTP load, with pre-built request bytes.</summary>
public sealed class LoadGenerator : IDisposable
{
    private readonly HttpClient _client;
    private readonly byte[] _body;
    private readonly string _url;
    private readonly string? _key;

    public LoadGenerator(string baseUrl, string? key, bool stream, int maxConnections, bool hold = false)
    {
        _client = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = maxConnections,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,

            // The direct runs against an --upstream-tls fake upstream: its certificate is self-signed (loopback only).
            SslOptions = { RemoteCertificateValidationCallback = (_, certificate, _, errors) => errors == System.Net.Security.SslPolicyErrors.None || BenchUpstream.IsItsCertificate(certificate) },
        })
        {
            Timeout = TimeSpan.FromMinutes(5),
        };
        _url = baseUrl.TrimEnd('/') + "/chat/completions";
        _key = key;
        var streamPart = stream ? "\"stream\":true," : string.Empty;
        var holdPart = hold ? "\"hold\":true," : string.Empty;
        _body = Encoding.UTF8.GetBytes(
            "{\"model\":\"bench-model\"," + streamPart + holdPart +
            "\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},{\"role\":\"user\",\"content\":\"Say hello to the benchmark in one short sentence.\"}],\"max_tokens\":64,\"temperature\":0.2}");
    }

    private HttpRequestMessage NewRequest()
    {
        var request = new HttpRequestMessage(HttpMethod.Post, _url) { Content = new ByteArrayContent(_body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        if (_key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _key);
        }

        return request;
    }

    /// <summary>Sends one request and reads the whole answer; returns (ok, microseconds to first body byte).</summary>
    public async Task<(bool Ok, long FirstByteUs)> SendAsync(CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        using var request = NewRequest();
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[16384];
        var first = -1L;
        int read;
        while ((read = await body.ReadAsync(buffer, cancellationToken)) > 0)
        {
            if (first < 0)
            {
                first = (long)Stopwatch.GetElapsedTime(started).TotalMicroseconds;
            }
        }

        return (response.IsSuccessStatusCode, first);
    }

    /// <summary>Opens a stream and returns once its first body bytes arrived; the rest is read by the returned task.</summary>
    public async Task<Task> OpenHeldStreamAsync()
    {
        var request = NewRequest();
        var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[4096];
        _ = await body.ReadAsync(buffer);
        return Task.Run(async () =>
        {
            while (await body.ReadAsync(buffer) > 0)
            {
            }

            response.Dispose();
            request.Dispose();
        });
    }

    public async Task<RunResult> ClosedLoopAsync(string name, int concurrency, TimeSpan duration, bool measureFirstByte = false)
    {
        var stop = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var samples = new List<long>[concurrency];
        var errors = 0;
        var started = Stopwatch.GetTimestamp();
        var workers = Enumerable.Range(0, concurrency).Select(async w =>
        {
            var list = samples[w] = new List<long>(8192);
            while (Stopwatch.GetTimestamp() < stop)
            {
                var t0 = Stopwatch.GetTimestamp();
                try
                {
                    var (ok, firstByte) = await SendAsync();
                    if (!ok)
                    {
                        Interlocked.Increment(ref errors);
                    }

                    list.Add(measureFirstByte ? firstByte : (long)Stopwatch.GetElapsedTime(t0).TotalMicroseconds);
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        }).ToArray();
        await Task.WhenAll(workers);
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var all = samples.SelectMany(s => s).ToArray();
        Array.Sort(all);
        return new RunResult(name, all.Length, errors, seconds, all);
    }

    /// <summary>Offers requests at a fixed rate whatever the answers do (open loop), latency from each send.</summary>
    public async Task<RunResult> FixedRateAsync(string name, int perSecond, TimeSpan duration)
    {
        var total = (int)(perSecond * duration.TotalSeconds);
        var latencies = new long[total];
        var errors = 0;
        var tasks = new Task[total];
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < total; i++)
        {
            var due = started + (long)(i * (double)Stopwatch.Frequency / perSecond);
            while (true)
            {
                var now = Stopwatch.GetTimestamp();
                var wait = (due - now) * 1000.0 / Stopwatch.Frequency;
                if (wait <= 0)
                {
                    break;
                }

                if (wait > 2)
                {
                    await Task.Delay(1);
                }
                else
                {
                    Thread.SpinWait(50);
                }
            }

            var index = i;
            tasks[i] = Task.Run(async () =>
            {
                var t0 = Stopwatch.GetTimestamp();
                try
                {
                    var (ok, _) = await SendAsync();
                    if (!ok)
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref errors);
                }

                latencies[index] = (long)Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
            });
        }

        await Task.WhenAll(tasks);
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        Array.Sort(latencies);
        return new RunResult(name, total, errors, seconds, latencies);
    }

    public void Dispose() => _client.Dispose();
}
