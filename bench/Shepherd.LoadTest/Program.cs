using System.Globalization;
using System.Text;
using Shepherd.LoadTest;

// Usage: dotnet run -c Release --project bench/Shepherd.LoadTest -- [--duration S] [--scenarios throughput,rate,stream,hold]
//        [--gateway PATH/shepherd.dll] [--deployments N] [--out FILE.md]
//        [--scenarios scaleout [--redis HOST:PORT] [--postgres CONNECTION]]  in-memory vs Redis-backed limits (a private
//                     redis-server when --redis is not given; PostgreSQL storage for the shared gateway when given)
//        [--scenarios usage-sink --postgres CONNECTION]   PostgreSQL usage-sink throughput (a fresh database, dropped after)
//        webhooks: [--webhook-rate 1000] [--webhook-workers 64] [--webhook-ttft-ms 50]
var options = Options.Parse(args);
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
var report = new StringBuilder();
report.AppendLine(CultureInfo.InvariantCulture, $"Load benchmark, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, .NET {Environment.Version}, duration {options.Duration.TotalSeconds:F0} s per run, gateway deployments per model: {options.Deployments}.");
report.AppendLine();

if (options.Scenarios.Contains("webhooks"))
{
    // Its own gateway (simulated provider, a webhook source); run alone with --scenarios webhooks.
    report.Append(await WebhookLoad.RunAsync(options.GatewayDll, options.Duration, options.WebhookRate, options.WebhookWorkers, options.WebhookFirstTokenMs));
    if (options.Scenarios.Count == 1)
    {
        Console.WriteLine(report.ToString());
        if (options.Output is not null)
        {
            await File.WriteAllTextAsync(options.Output, report.ToString());
        }

        return;
    }
}

// --upstream-tls: the fake upstream serves HTTPS and offers HTTP/2, as the cloud providers do (the gateway negotiates
// HTTP/2 over TLS by default); the gateway trusts its self-signed certificate through SSL_CERT_FILE.
await using var upstream = await BenchUpstream.StartAsync(options.UpstreamTls);
if (upstream.CertificateFile is not null)
{
    GatewayProcess.ExtraEnvironment["SSL_CERT_FILE"] = upstream.CertificateFile;
}
if (options.Scenarios.Contains("scaleout"))
{
    await ScaleOutBench.RunAsync(options, upstream.BaseUrl, report);
}

if (options.Scenarios.Contains("usage-reports"))
{
    await UsageReportBench.RunAsync(options.Records, options.RecordBatch, report);
}

if (options.Scenarios.Contains("usage-sink"))
{
    await ScaleOutBench.UsageSinkAsync(options, report);
}

if (!options.Scenarios.Overlaps(["throughput", "rate", "stream", "hold", "keys", "sustained"]))
{
    Console.WriteLine(report.ToString());
    if (options.Output is not null)
    {
        await File.WriteAllTextAsync(options.Output, report.ToString());
    }

    return;
}

await using var gateway = await GatewayProcess.StartAsync(options.GatewayDll, upstream.BaseUrl, options.Deployments, options.LogRequests, options.Usage);
var direct = upstream.BaseUrl;
var through = gateway.Url + "/v1";
// --key virtual: every scenario with a virtual key that has every limit set (created here), not the master key.
var key = options.VirtualKey == "virtual" ? await gateway.CreateVirtualKeyAsync() : options.VirtualKey ?? GatewayProcess.MasterKey;
string? virtualKey = null;
if (options.Scenarios.Contains("keys"))
{
    // A virtual key with every limit set (high enough not to refuse): what a real tenant's traffic costs.
    virtualKey = await gateway.CreateVirtualKeyAsync();
}

// Warm both paths (JIT, connection pools, tiered compilation).
foreach (var target in new[] { direct, through })
{
    using var warm = new LoadGenerator(target, key, stream: false, maxConnections: 64);
    await warm.ClosedLoopAsync("warmup", 64, TimeSpan.FromSeconds(options.Warmup));
    using var warmStream = new LoadGenerator(target, key, stream: true, maxConnections: 16);
    await warmStream.ClosedLoopAsync("warmup", 16, TimeSpan.FromSeconds(Math.Max(1, options.Warmup / 2)));
}

if (options.Scenarios.Contains("throughput"))
{
    report.AppendLine("### Closed loop, non-streamed");
    report.AppendLine();
    report.AppendLine("| concurrency | target | requests/s | p50 ms | p99 ms | errors | gateway CPU µs/request | gateway KB allocated/request |");
    report.AppendLine("|---:|---|---:|---:|---:|---:|---:|---:|");
    foreach (var concurrency in options.Concurrency)
    {
        foreach (var (name, url) in new[] { ("direct", direct), ("shepherd", through) })
        {
            using var load = new LoadGenerator(url, key, stream: false, maxConnections: concurrency);
            var cpuBefore = gateway.CpuTime;
            var allocatedBefore = await gateway.AllocatedBytesAsync();
            var result = await load.ClosedLoopAsync(name, concurrency, options.Duration);
            var cpu = (gateway.CpuTime - cpuBefore).TotalMicroseconds / Math.Max(1, result.Requests);
            var allocated = (await gateway.AllocatedBytesAsync() - allocatedBefore) / 1024.0 / Math.Max(1, result.Requests);
            var shepherd = name == "shepherd";
            report.AppendLine(CultureInfo.InvariantCulture, $"| {concurrency} | {name} | {result.RequestsPerSecond:F0} | {result.Percentile(50):F3} | {result.Percentile(99):F3} | {result.Errors} | {(shepherd ? cpu.ToString("F1", CultureInfo.InvariantCulture) : "–")} | {(shepherd ? allocated.ToString("F2", CultureInfo.InvariantCulture) : "–")} |");
            Console.Error.WriteLine($"throughput c={concurrency} {name}: {result.RequestsPerSecond:F0} rps p50 {result.Percentile(50):F3} ms");
        }
    }

    report.AppendLine();
}

if (virtualKey is not null)
{
    report.AppendLine("### Master key vs virtual key (all limits set), closed loop, non-streamed");
    report.AppendLine();
    report.AppendLine("| concurrency | key | requests/s | p50 ms | p99 ms | errors | gateway CPU µs/request |");
    report.AppendLine("|---:|---|---:|---:|---:|---:|---:|");
    var rates = new Dictionary<string, double>();
    foreach (var (name, k) in new[] { ("master", GatewayProcess.MasterKey), ("virtual", virtualKey), ("master ", GatewayProcess.MasterKey), ("virtual ", virtualKey) })
    {
        using var load = new LoadGenerator(through, k, stream: false, maxConnections: 64);
        var cpuBefore = gateway.CpuTime;
        var result = await load.ClosedLoopAsync(name, 64, options.Duration);
        var cpu = (gateway.CpuTime - cpuBefore).TotalMicroseconds / Math.Max(1, result.Requests);
        rates[name.Trim()] = rates.GetValueOrDefault(name.Trim()) + (result.RequestsPerSecond / 2);
        report.AppendLine(CultureInfo.InvariantCulture, $"| 64 | {name.Trim()} | {result.RequestsPerSecond:F0} | {result.Percentile(50):F3} | {result.Percentile(99):F3} | {result.Errors} | {cpu:F1} |");
        Console.Error.WriteLine($"keys {name}: {result.RequestsPerSecond:F0} rps");
    }

    report.AppendLine(CultureInfo.InvariantCulture, $"| | **virtual vs master (mean of 2 runs each)** | **{(rates["virtual"] / rates["master"] - 1) * 100:+0.0;-0.0}%** | | | | |");
    report.AppendLine();
}

if (options.Scenarios.Contains("rate"))
{
    report.AppendLine("### Open loop at a fixed offered rate, non-streamed");
    report.AppendLine();
    report.AppendLine("| offered req/s | target | achieved req/s | p50 ms | p99 ms | errors |");
    report.AppendLine("|---:|---|---:|---:|---:|---:|");
    foreach (var rate in options.Rates)
    {
        var p50 = new Dictionary<string, double>();
        foreach (var (name, url) in new[] { ("direct", direct), ("shepherd", through) })
        {
            using var load = new LoadGenerator(url, key, stream: false, maxConnections: 256);
            var result = await load.FixedRateAsync(name, rate, options.Duration);
            p50[name] = result.Percentile(50);
            report.AppendLine(CultureInfo.InvariantCulture, $"| {rate} | {name} | {result.RequestsPerSecond:F0} | {result.Percentile(50):F3} | {result.Percentile(99):F3} | {result.Errors} |");
            Console.Error.WriteLine($"rate {rate} {name}: p50 {result.Percentile(50):F3} ms p99 {result.Percentile(99):F3} ms");
        }

        report.AppendLine(CultureInfo.InvariantCulture, $"| {rate} | **added p50** | | **{p50["shepherd"] - p50["direct"]:F3}** | | |");
    }

    report.AppendLine();
}

if (options.Scenarios.Contains("sustained"))
{
    // A fixed offered rate for a long time, watching the usage sink's queue stay bounded.
    var rate = options.Rates.Max();
    using var load = new LoadGenerator(through, key, stream: false, maxConnections: 512);
    var sampling = new CancellationTokenSource();
    var maxQueue = 0.0;
    var sampler = Task.Run(async () =>
    {
        while (!sampling.IsCancellationRequested)
        {
            maxQueue = Math.Max(maxQueue, await gateway.MetricAsync("shepherd_usage_sink_queue") ?? 0);
            await Task.Delay(500);
        }
    });
    var result = await load.FixedRateAsync("sustained", rate, options.Duration);
    await sampling.CancelAsync();
    await sampler;
    var written = await gateway.MetricAsync("shepherd_usage_sink_written_total");
    var spilled = await gateway.MetricAsync("shepherd_usage_sink_spilled_total");
    report.AppendLine("### Sustained load with usage recording");
    report.AppendLine();
    report.AppendLine(CultureInfo.InvariantCulture, $"{rate} requests/s offered for {options.Duration.TotalSeconds:F0} s: achieved {result.RequestsPerSecond:F0}/s, p50 {result.Percentile(50):F3} ms, p99 {result.Percentile(99):F3} ms, errors {result.Errors}; usage sink queue at most **{maxQueue:F0}** records (sampled every 0.5 s), {written ?? 0:F0} records written, {spilled ?? 0:F0} spilled.");
    report.AppendLine();
}

if (options.Scenarios.Contains("stream"))
{
    report.AppendLine("### Streamed: time to first byte (concurrency 1)");
    report.AppendLine();
    report.AppendLine("| target | streams | p50 ms | p99 ms | errors |");
    report.AppendLine("|---|---:|---:|---:|---:|");
    var firstByte = new Dictionary<string, double>();
    foreach (var (name, url) in new[] { ("direct", direct), ("shepherd", through) })
    {
        using var load = new LoadGenerator(url, key, stream: true, maxConnections: 1);
        var result = await load.ClosedLoopAsync(name, 1, options.Duration, measureFirstByte: true);
        firstByte[name] = result.Percentile(50);
        report.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {result.Requests} | {result.Percentile(50):F3} | {result.Percentile(99):F3} | {result.Errors} |");
        Console.Error.WriteLine($"stream first byte {name}: p50 {result.Percentile(50):F3} ms p99 {result.Percentile(99):F3} ms errors {result.Errors}");
    }

    report.AppendLine(CultureInfo.InvariantCulture, $"| **added p50** | | **{firstByte["shepherd"] - firstByte["direct"]:F3}** | | |");
    report.AppendLine();
}

if (options.Scenarios.Contains("hold"))
{
    const int Held = 500;

    // Two unmeasured rounds first: code paths jitted to their final tier (with tiered compilation and PGO a method
    // is compiled again after its first 30 calls and again after 30 more, and the JIT's own memory, malloc'd on its
    // background thread, would otherwise land in the measured round: 1–10 KiB "per stream" that vanish with
    // DOTNET_TieredCompilation=0), thread pool and buffer pools at their working size. Their connections are
    // closed (the upstream says Connection: close to held streams, the client is disposed), so the measured round
    // pays for fresh connections on both sides.
    await HoldAsync(upstream, through, key, Held);
    await HoldAsync(upstream, through, key, Held);
    var (managedBefore, before, committedBefore, threadsBefore, jitBefore) = await SettledAsync(gateway);
    var residentBefore = gateway.ResidentByKind;
    var pauseText = Environment.GetEnvironmentVariable("BENCH_HOLD_PAUSE_SECONDS");
    if (int.TryParse(pauseText, out var pauseBefore))
    {
        Console.Error.WriteLine($"before the measured round, for {pauseBefore} s: gateway pid {gateway.ProcessId}");
        await Task.Delay(TimeSpan.FromSeconds(pauseBefore));
    }

    var release = await HoldAsync(upstream, through, key, Held, keepOpen: true);

    var (managedAfter, after, committedAfter, threadsAfter, jitAfter) = await SettledAsync(gateway);
    var residentAfter = gateway.ResidentByKind;
    if (int.TryParse(pauseText, out var pause))
    {
        // Time to inspect the gateway while the streams are held (e.g. a heap dump of process ProcessId).
        Console.Error.WriteLine($"holding {Held} streams for {pause} s: gateway pid {gateway.ProcessId}");
        await Task.Delay(TimeSpan.FromSeconds(pause));
    }

    await release();
    report.AppendLine("### Held-open streams");
    report.AppendLine();
    report.AppendLine(CultureInfo.InvariantCulture, $"{Held} streams held open through the gateway (second round; after full collections, memory read once settled): working set {before / 1048576.0:F1} MiB → {after / 1048576.0:F1} MiB, **{(after - before) / (double)Held / 1024:F1} KiB per stream** ({(managedAfter - managedBefore) / (double)Held / 1024:F1} KiB of it live managed objects; GC-committed {(committedAfter - committedBefore) / (double)Held / 1024:F1} KiB per stream; threads {threadsBefore} → {threadsAfter}; methods jitted during the round {jitAfter - jitBefore}).");
    if (residentBefore is { } rb && residentAfter is { } ra)
    {
        // The working set also counts pages of mapped assemblies first touched meanwhile (shared, evictable code).
        report.AppendLine(CultureInfo.InvariantCulture, $"Of the working set: anonymous memory **{(ra.Anonymous - rb.Anonymous) / (double)Held / 1024:F1} KiB per stream**, file-backed (mapped code) {(ra.File - rb.File) / (double)Held / 1024:F1} KiB per stream.");
    }

    report.AppendLine();
}

/// <summary>
/// Full collections, then the gateway's memory once it has settled: right after a collection the working set is
/// briefly low (freed pages given back, then touched again by the next allocations and by background tiered JIT),
/// so reading it at once would inflate the difference. Taken the same way before and after.
/// </summary>
static async Task<(long Managed, long WorkingSet, long GcCommitted, int Threads, long JitMethods)> SettledAsync(GatewayProcess gateway)
{
    await gateway.CollectAsync();
    await Task.Delay(3000);
    var (managed, _, committed, threads, jit) = await gateway.CollectAsync();
    await Task.Delay(2000);
    return (managed, gateway.WorkingSet, committed, threads, jit);
}

/// <summary>Opens <paramref name="count"/> streams the upstream holds after their first word; returns what releases and drains them.</summary>
static async Task<Func<Task>> HoldAsync(BenchUpstream upstream, string url, string key, int count, bool keepOpen = false)
{
    var load = new LoadGenerator(url, key, stream: true, maxConnections: count + 10, hold: true);
    var opened = new List<Task>(count);
    for (var i = 0; i < count; i++)
    {
        try
        {
            opened.Add(await load.OpenHeldStreamAsync());
        }
        catch (HttpRequestException e)
        {
            throw new InvalidOperationException($"Held stream {i + 1} of {count} failed to open: {e.Message}", e);
        }
    }

    async Task ReleaseAsync()
    {
        upstream.ReleaseHeldStreams();
        await Task.WhenAll(opened);
        load.Dispose();
    }

    if (!keepOpen)
    {
        await ReleaseAsync();
    }

    return ReleaseAsync;
}

var text = report.ToString();
Console.WriteLine(text);
if (options.Output is not null)
{
    await File.WriteAllTextAsync(options.Output, text);
}

internal sealed record Options(
    TimeSpan Duration,
    int Warmup,
    HashSet<string> Scenarios,
    int[] Concurrency,
    int[] Rates,
    string GatewayDll,
    int Deployments,
    string? VirtualKey,
    bool LogRequests,
    bool Usage,
    string? Output,
    string? Redis,
    string? Postgres,
    int WebhookRate,
    int WebhookWorkers,
    int WebhookFirstTokenMs,
    bool UpstreamTls,
    int Records,
    int RecordBatch)
{
    public static Options Parse(string[] args)
    {
        string? Value(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        var root = FindRoot();
        return new Options(
            TimeSpan.FromSeconds(double.Parse(Value("--duration") ?? "10", CultureInfo.InvariantCulture)),
            int.Parse(Value("--warmup") ?? "3", CultureInfo.InvariantCulture),
            (Value("--scenarios") ?? "throughput,rate,stream,hold").Split(',').ToHashSet(),
            (Value("--concurrency") ?? "1,16,64").Split(',').Select(int.Parse).ToArray(),
            (Value("--rates") ?? "400,1600").Split(',').Select(int.Parse).ToArray(),
            Value("--gateway") ?? Path.Combine(root, "src/Shepherd/bin/Release/net10.0/shepherd.dll"),
            int.Parse(Value("--deployments") ?? "1", CultureInfo.InvariantCulture),
            Value("--key"),
            args.Contains("--log-requests"),
            !args.Contains("--no-usage"),
            Value("--out"),
            Value("--redis"),
            Value("--postgres"),
            int.Parse(Value("--webhook-rate") ?? "1000", CultureInfo.InvariantCulture),
            int.Parse(Value("--webhook-workers") ?? "64", CultureInfo.InvariantCulture),
            int.Parse(Value("--webhook-ttft-ms") ?? "50", CultureInfo.InvariantCulture),
            args.Contains("--upstream-tls"),
            int.Parse(Value("--records") ?? "10000000", CultureInfo.InvariantCulture),
            int.Parse(Value("--batch") ?? "1000", CultureInfo.InvariantCulture));
    }

    private static string FindRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "Shepherd.slnx")))
        {
            dir = Path.GetDirectoryName(dir);
        }

        return dir ?? Directory.GetCurrentDirectory();
    }
}
