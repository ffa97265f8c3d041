namespace Shepherd.LoadTest;

using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

/// <summary>
/// The webhook scenario: signed events offered at a fixed rate (open loop) to <c>POST /webhooks/bench</c> of a gateway
/// process whose events are processed by workers against the simulated provider. Reports events acknowledged per
/// second (each one durably stored, fsync'd, before its 202), acknowledgement p50/p99, and processing throughput
/// (results completed per second).
/// </summary>
public static class WebhookLoad
{
    private const string Secret = "whsec-bench-0123456789abcdef";

    public static async Task<string> RunAsync(string gatewayDll, TimeSpan duration, int rate, int workers, int firstTokenMs)
    {
        var yaml = $$$"""
            logging: { level: warning, requests: false }
            providers:
              - name: sim
                type: simulated
                simulated: { time_to_first_token_ms: {{{firstTokenMs}}}, completion_tokens: 16 }
            models:
              - name: bench-model
                price: { input: 0.42, output: 0.42 }
                deployments: [ { provider: sim } ]
            webhooks:
              workers: {{{workers}}}
              sources:
                - name: bench
                  secrets: [ "{{{Secret}}}" ]
                  signature_header: x-bench-signature
                  timestamp_header: x-bench-timestamp
                  type_field: event_type
                  rules:
                    - { on: "*", model: bench-model, system: "Summarise the following agent result.", user: "Agent {{ agent_id }}: {{ json data }}", max_tokens: 16 }
                - name: intake
                  secrets: [ "{{{Secret}}}" ]
                  signature_header: x-bench-signature
                  timestamp_header: x-bench-timestamp
                  type_field: event_type
                  rules:
                    - { on: "*", action: skip }
            """;
        await using var gateway = await GatewayProcess.StartWithConfigAsync(gatewayDll, yaml);
        using var client = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 512,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
        })
        {
            BaseAddress = new Uri(gateway.Url),
            Timeout = TimeSpan.FromSeconds(30),
        };

        // Warm-up (JIT, connections, SQLite pages), then wait until it is processed so the runs do not overlap.
        await OfferAsync(client, "bench", "warm", Math.Max(50, rate / 4), TimeSpan.FromSeconds(2));
        await WaitForCompletedAsync(client, Math.Max(50, rate / 4) * 2, TimeSpan.FromSeconds(60));

        // 1. Intake alone: a source whose rule skips every event (stored durably, nothing to process).
        var intakeCpuBefore = gateway.CpuTime;
        var intakeStarted = Stopwatch.GetTimestamp();
        var intake = await OfferAsync(client, "intake", "alone", rate, duration);
        var intakeSeconds = Stopwatch.GetElapsedTime(intakeStarted).TotalSeconds;
        var intakeCpu = gateway.CpuTime - intakeCpuBefore;

        // 2. Intake while the same events are processed (each one a model call through the gateway).
        var before = await CompletedAsync(client);
        var cpuBefore = gateway.CpuTime;
        var started = Stopwatch.GetTimestamp();
        var offered = await OfferAsync(client, "bench", "run", rate, duration);
        var offerSeconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var expected = before + offered.Accepted;
        var processedAt = await WaitForCompletedAsync(client, expected, TimeSpan.FromMinutes(5));
        var processSeconds = Stopwatch.GetElapsedTime(started, processedAt).TotalSeconds;
        var cpu = gateway.CpuTime - cpuBefore;

        var report = new StringBuilder();
        report.AppendLine("### Webhooks");
        report.AppendLine();
        report.AppendLine(CultureInfo.InvariantCulture, $"Signed events (HMAC-SHA256 with a signed timestamp, ~400-byte JSON) offered at {rate}/s for {duration.TotalSeconds:F0} s (open loop); each 202 only after the event's batch was committed with `synchronous=FULL` (fsync). Processing: {workers} workers, simulated provider with {firstTokenMs} ms to first token, each event one Chat Completions call through the gateway's own pipeline.");
        report.AppendLine();
        report.AppendLine("| run | offered/s | acknowledged/s | ack p50 ms | ack p99 ms | ack max ms | errors | processed/s | all processed after s | gateway CPU µs/event |");
        report.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        report.AppendLine(CultureInfo.InvariantCulture, $"| intake only (skip rule) | {rate} | {intake.Accepted / intakeSeconds:F0} | {intake.Result.Percentile(50):F2} | {intake.Result.Percentile(99):F2} | {intake.Result.Percentile(100):F2} | {intake.Result.Errors} | – | – | {intakeCpu.TotalMicroseconds / Math.Max(1, intake.Accepted):F0} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| intake + processing | {rate} | {offered.Accepted / offerSeconds:F0} | {offered.Result.Percentile(50):F2} | {offered.Result.Percentile(99):F2} | {offered.Result.Percentile(100):F2} | {offered.Result.Errors} | {offered.Accepted / processSeconds:F0} | {processSeconds:F1} | {cpu.TotalMicroseconds / Math.Max(1, offered.Accepted):F0} |");
        report.AppendLine();
        Console.Error.WriteLine($"webhooks intake only: {intake.Accepted} acknowledged, p50 {intake.Result.Percentile(50):F2} ms p99 {intake.Result.Percentile(99):F2} ms");
        Console.Error.WriteLine($"webhooks: {offered.Accepted} acknowledged, p50 {offered.Result.Percentile(50):F2} ms p99 {offered.Result.Percentile(99):F2} ms, processed in {processSeconds:F1} s");
        return report.ToString();
    }

    private static async Task<(int Accepted, RunResult Result)> OfferAsync(HttpClient client, string source, string prefix, int perSecond, TimeSpan duration)
    {
        var total = (int)(perSecond * duration.TotalSeconds);
        var latencies = new long[total];
        var errors = 0;
        var accepted = 0;
        var tasks = new Task[total];
        var secret = Encoding.UTF8.GetBytes(Secret);
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < total; i++)
        {
            var due = started + (long)(i * (double)Stopwatch.Frequency / perSecond);
            while (Stopwatch.GetTimestamp() < due)
            {
                if ((due - Stopwatch.GetTimestamp()) * 1000.0 / Stopwatch.Frequency > 2)
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
                var body = Encoding.UTF8.GetBytes($$$"""{"id":"{{{prefix}}}-{{{index}}}","event_type":"agent.completed","agent_id":"agent-{{{index % 50}}}","session_id":"sess-{{{index % 500}}}","timestamp":"2026-03-01T10:00:00Z","data":{"result":"Wrote the quarterly report and sent it to finance; 3 tables, 2 charts.","steps":7,"tools":["search","spreadsheet","mail"],"duration_ms":48211}}""");
                var timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
                var signature = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes(timestamp + ".").Concat(body).ToArray()));
                var t0 = Stopwatch.GetTimestamp();
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, $"/webhooks/{source}") { Content = new ByteArrayContent(body) };
                    request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                    request.Headers.TryAddWithoutValidation("x-bench-signature", signature);
                    request.Headers.TryAddWithoutValidation("x-bench-timestamp", timestamp);
                    using var response = await client.SendAsync(request);
                    await response.Content.ReadAsByteArrayAsync();
                    if (response.StatusCode == HttpStatusCode.Accepted)
                    {
                        Interlocked.Increment(ref accepted);
                    }
                    else
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
        return (accepted, new RunResult(prefix, total, errors, seconds, latencies));
    }

    /// <summary>Completed processing jobs of the source, from <c>/health/ready</c>.</summary>
    private static async Task<long> CompletedAsync(HttpClient client)
    {
        using var ready = JsonDocument.Parse(await client.GetStringAsync("/health/ready"));
        return ready.RootElement.GetProperty("webhooks").GetProperty("sources")[0].GetProperty("completed").GetInt64();
    }

    /// <returns>When the count was reached (a <see cref="Stopwatch"/> timestamp).</returns>
    private static async Task<long> WaitForCompletedAsync(HttpClient client, long count, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (await CompletedAsync(client) < count)
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"Only {await CompletedAsync(client)} of {count} events were processed in {timeout.TotalSeconds:F0} s.");
            }

            await Task.Delay(50);
        }

        return Stopwatch.GetTimestamp();
    }
}
