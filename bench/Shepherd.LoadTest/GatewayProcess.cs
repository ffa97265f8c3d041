namespace Shepherd.LoadTest;

using System.Diagnostics;
using System.Net.Sockets;

/// <summary>The gateway under test, as a separate process so its CPU time and memory can be read on their own.</summary>
public sealed class GatewayProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _configPath;

    private GatewayProcess(Process process, string url, string configPath)
    {
        _process = process;
        Url = url;
        _configPath = configPath;
    }

    public string Url { get; }

    public int ProcessId => _process.Id;

    /// <summary>Variables set for every gateway process this tool starts (before <c>BENCH_GATEWAY_ENV</c>).</summary>
    public static Dictionary<string, string> ExtraEnvironment { get; } = [];

    public const string MasterKey = "sk-bench-master-key-0123456789";

    /// <param name="storage">A <c>storage:</c> value (e.g. an Npgsql connection string); default: a temporary SQLite file.</param>
    /// <param name="redis">A <c>state.redis</c> value: limits, breakers and key changes shared through Redis; default: in memory.</param>
    public static async Task<GatewayProcess> StartAsync(string gatewayDll, string upstreamBaseUrl, int deployments = 1, bool logRequests = false, bool usage = true, string? storage = null, string? redis = null)
    {
        var port = FreePort();
        var url = $"http://127.0.0.1:{port}";
        var configPath = Path.Combine(Path.GetTempPath(), $"shepherd-bench-{port}.yaml");
        var deploymentLines = string.Join("\n", Enumerable.Range(0, deployments).Select(_ => "      - { provider: bench, model: bench-model }"));
        await File.WriteAllTextAsync(configPath, $"""
            listen: {url}
            master_key: {MasterKey}
            logging: {"{"} level: warning, requests: {(logRequests ? "true" : "false")} {"}"}
            storage: "{storage ?? "sqlite:" + Path.Combine(Path.GetTempPath(), $"shepherd-bench-{port}.db")}"
            {(redis is null ? "" : $"state: {{ redis: \"{redis}\" }}")}
            usage: {"{"} enabled: {(usage ? "true" : "false")}{UsageFlush()} {"}"}
            server: {"{"} inline_io: {InlineIo()} {"}"}
            providers:
              - name: bench
                type: openai
                base_url: {upstreamBaseUrl}
                api_keys: [ sk-bench-upstream ]
            models:
              - name: bench-model
                price: {"{"} input: 2.00, output: 8.00 {"}"}
                deployments:
            {deploymentLines}
            """);
        return await LaunchAsync(gatewayDll, url, configPath);
    }

    // BENCH_INLINE_IO=false runs the gateway with server.inline_io off (for A/B runs against the default).
    private static string InlineIo() => Environment.GetEnvironmentVariable("BENCH_INLINE_IO") is { Length: > 0 } value ? value : "true";

    // BENCH_USAGE_FLUSH_MS sets usage.flush_interval_ms (for experiments with the usage writer's batching).
    private static string UsageFlush() => Environment.GetEnvironmentVariable("BENCH_USAGE_FLUSH_MS") is { Length: > 0 } ms ? $", flush_interval_ms: {int.Parse(ms, System.Globalization.CultureInfo.InvariantCulture)}" : "";

    /// <summary>Starts a gateway with this configuration (listen, master key and a fresh database are added).</summary>
    public static async Task<GatewayProcess> StartWithConfigAsync(string gatewayDll, string yaml)
    {
        var port = FreePort();
        var url = $"http://127.0.0.1:{port}";
        var configPath = Path.Combine(Path.GetTempPath(), $"shepherd-bench-{port}.yaml");
        await File.WriteAllTextAsync(configPath, $"listen: {url}\nmaster_key: {MasterKey}\nstorage: sqlite:{Path.Combine(Path.GetTempPath(), $"shepherd-bench-{port}.db")}\n{yaml}\n");
        return await LaunchAsync(gatewayDll, url, configPath);
    }

    private static async Task<GatewayProcess> LaunchAsync(string gatewayDll, string url, string configPath)
    {
        var start = new ProcessStartInfo("dotnet", [gatewayDll, "serve", "--config", configPath])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["DOTNET_gcServer"] = Environment.GetEnvironmentVariable("BENCH_GATEWAY_GCSERVER") ?? "1";

        foreach (var (name, value) in ExtraEnvironment)
        {
            start.Environment[name] = value;
        }

        // BENCH_GATEWAY_ENV="A=1;B=2" sets variables for the gateway process only (for experiments).
        foreach (var pair in (Environment.GetEnvironmentVariable("BENCH_GATEWAY_ENV") ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            start.Environment[pair[..eq]] = pair[(eq + 1)..];
        }
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine($"[gateway] {e.Data}");
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var client = new HttpClient();
        for (var i = 0; i < 200; i++)
        {
            try
            {
                var response = await client.GetAsync($"{url}/health");
                if (response.IsSuccessStatusCode)
                {
                    return new GatewayProcess(process, url, configPath);
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        process.Kill();
        throw new InvalidOperationException("The gateway did not start.");
    }

    /// <summary>Creates a virtual key with every limit set, high enough never to refuse during the run.</summary>
    public async Task<string> CreateVirtualKeyAsync()
    {
        using var client = new HttpClient();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", MasterKey);
        // BENCH_VIRTUAL_KEY_JSON replaces the key's settings (to see what one limit costs).
        using var content = new StringContent(
            Environment.GetEnvironmentVariable("BENCH_VIRTUAL_KEY_JSON") is { Length: > 0 } custom ? custom :
            """{"name":"bench","allowed_models":["bench-*"],"ip_allowlist":["127.0.0.0/8","::1"],"rpm":1000000,"tpm":2000000000,"max_parallel":100000,"daily_budget":1000000,"monthly_budget":1000000,"total_budget":1000000,"credit_balance":1000000}""",
            System.Text.Encoding.UTF8,
            "application/json");
        var response = await client.PostAsync($"{Url}/admin/keys", content);
        response.EnsureSuccessStatusCode();
        using var json = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("key").GetString()!;
    }

    /// <summary>Reads one value from the gateway's /metrics (the first series of that name), or null.</summary>
    public async Task<double?> MetricAsync(string name)
    {
        using var client = new HttpClient();
        var text = await client.GetStringAsync($"{Url}/metrics");
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(name, StringComparison.Ordinal) && (line.Length == name.Length || line[name.Length] is ' ' or '{'))
            {
                var value = line[(line.LastIndexOf(' ') + 1)..];
                return double.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    /// <summary>A full collection in the gateway, then its live managed heap, working set, GC-committed memory and threads.</summary>
    public async Task<(long Managed, long WorkingSet, long GcCommitted, int Threads, long JitMethods)> CollectAsync()
    {
        using var client = new HttpClient();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await client.PostAsync($"{Url}/admin/debug/gc", null);
        response.EnsureSuccessStatusCode();
        using var json = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = json.RootElement;
        return (root.GetProperty("managed_bytes").GetInt64(), root.GetProperty("working_set_bytes").GetInt64(), root.GetProperty("gc_committed_bytes").GetInt64(), root.GetProperty("threads").GetInt32(),
            root.TryGetProperty("jit_methods", out var jit) ? jit.GetInt64() : 0);
    }

    /// <summary>Bytes the gateway has allocated so far (no collection).</summary>
    public async Task<long> AllocatedBytesAsync()
    {
        using var client = new HttpClient();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await client.PostAsync($"{Url}/admin/debug/gc?collect=false", null);
        response.EnsureSuccessStatusCode();
        using var json = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("allocated_bytes").GetInt64();
    }

    /// <summary>CPU time the gateway process has used so far.</summary>
    public TimeSpan CpuTime
    {
        get
        {
            _process.Refresh();
            return _process.TotalProcessorTime;
        }
    }

    /// <summary>Resident memory of the gateway process.</summary>
    public long WorkingSet
    {
        get
        {
            _process.Refresh();
            return _process.WorkingSet64;
        }
    }

    /// <summary>
    /// The gateway's resident memory by kind (Linux, <c>/proc/PID/status</c>): anonymous (heaps, stacks, buffers — what
    /// the process itself allocated) and file-backed (mapped assemblies and libraries, shared with other processes and
    /// evictable). Null elsewhere.
    /// </summary>
    public (long Anonymous, long File)? ResidentByKind
    {
        get
        {
            var status = $"/proc/{_process.Id}/status";
            if (!File.Exists(status))
            {
                return null;
            }

            long anonymous = 0, file = 0;
            foreach (var line in File.ReadLines(status))
            {
                if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
                {
                    anonymous = Kilobytes(line);
                }
                else if (line.StartsWith("RssFile:", StringComparison.Ordinal))
                {
                    file = Kilobytes(line);
                }
            }

            return (anonymous, file);

            static long Kilobytes(string line) =>
                1024 * long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        File.Delete(_configPath);
    }
}
