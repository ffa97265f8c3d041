namespace Shepherd.LoadTest;

using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Npgsql;
using Shepherd.Accounting;
using Shepherd.Storage.Postgres;

/// <summary>
/// Scale-out measurements: the price of shared state (a virtual key's limits checked in Redis, one Lua script per
/// check-and-reserve and one per settlement) against in-memory state, and the PostgreSQL usage sink's throughput.
/// </summary>
internal static class ScaleOutBench
{
    /// <summary>The same virtual key (every limit set) through a gateway with in-memory state and one with Redis (and PostgreSQL when given).</summary>
    public static async Task RunAsync(Options options, string upstreamBaseUrl, StringBuilder report)
    {
        await using var redis = options.Redis is null ? await PrivateRedis.StartAsync() : null;
        var redisEndpoint = options.Redis ?? redis!.Endpoint;
        await using var database = options.Postgres is null ? null : await BenchDatabase.CreateAsync(options.Postgres);
        await using var memory = await GatewayProcess.StartAsync(options.GatewayDll, upstreamBaseUrl, options.Deployments);
        await using var shared = await GatewayProcess.StartAsync(options.GatewayDll, upstreamBaseUrl, options.Deployments, storage: database?.ConnectionString, redis: redisEndpoint);
        var gateways = new[] { ("in-memory", memory, await memory.CreateVirtualKeyAsync()), (database is null ? "Redis" : "Redis + PostgreSQL", shared, await shared.CreateVirtualKeyAsync()) };

        foreach (var (_, gateway, key) in gateways)
        {
            using var warm = new LoadGenerator(gateway.Url + "/v1", key, stream: false, maxConnections: 64);
            await warm.ClosedLoopAsync("warmup", 64, TimeSpan.FromSeconds(options.Warmup));
        }

        report.AppendLine("### Virtual key with every limit set: in-memory state vs shared state");
        report.AppendLine();
        report.AppendLine("| load | state | requests/s | p50 ms | p99 ms | errors | gateway CPU µs/request |");
        report.AppendLine("|---|---|---:|---:|---:|---:|---:|");
        var p99 = new Dictionary<string, double>();
        foreach (var rate in options.Rates.Take(1))
        {
            foreach (var (name, gateway, key) in gateways)
            {
                using var load = new LoadGenerator(gateway.Url + "/v1", key, stream: false, maxConnections: 256);
                var cpu = gateway.CpuTime;
                var result = await load.FixedRateAsync(name, rate, options.Duration);
                p99[name] = result.Percentile(99);
                Row($"{rate} req/s offered", name, result, (gateway.CpuTime - cpu).TotalMicroseconds / Math.Max(1, result.Requests));
            }
        }

        foreach (var (name, gateway, key) in gateways)
        {
            using var load = new LoadGenerator(gateway.Url + "/v1", key, stream: false, maxConnections: 64);
            var cpu = gateway.CpuTime;
            var result = await load.ClosedLoopAsync(name, 64, options.Duration);
            Row("closed loop, 64 concurrent", name, result, (gateway.CpuTime - cpu).TotalMicroseconds / Math.Max(1, result.Requests));
        }

        var values = p99.Values.ToArray();
        report.AppendLine(CultureInfo.InvariantCulture, $"| **added p99 at {options.Rates[0]} req/s** | | | | **{values[1] - values[0]:F3}** | | |");
        report.AppendLine();

        void Row(string load, string name, RunResult result, double cpu)
        {
            report.AppendLine(CultureInfo.InvariantCulture, $"| {load} | {name} | {result.RequestsPerSecond:F0} | {result.Percentile(50):F3} | {result.Percentile(99):F3} | {result.Errors} | {cpu:F1} |");
            Console.Error.WriteLine($"scaleout {load} {name}: {result.RequestsPerSecond:F0} rps p50 {result.Percentile(50):F3} p99 {result.Percentile(99):F3} errors {result.Errors}");
        }
    }

    /// <summary>Usage records written to PostgreSQL in batches (as the usage recorder writes them), by 1 and by 4 writers (instances).</summary>
    public static async Task UsageSinkAsync(Options options, StringBuilder report)
    {
        await using var database = await BenchDatabase.CreateAsync(options.Postgres ?? throw new InvalidOperationException("--postgres is required for the usage-sink scenario"));
        await using var postgres = new PostgresDatabase(database.ConnectionString);
        await postgres.MigrateAsync(CancellationToken.None);
        var store = new PostgresUsageStore(postgres);
        const int BatchSize = 1000;
        var total = (int)Math.Clamp(options.Duration.TotalSeconds * 20_000, 50_000, 400_000);
        var start = DateTimeOffset.UtcNow;
        var next = 0;
        UsageRecord[] Batch() => Enumerable.Range(0, BatchSize).Select(_ =>
        {
            var i = Interlocked.Increment(ref next);
            return new UsageRecord
            {
                Time = start.AddMilliseconds(i),
                RequestId = $"req_{i:D9}",
                KeyId = $"key_{i % 50}",
                Team = $"team-{i % 5}",
                RequestedModel = "bench-model",
                ServedModel = "bench-model",
                Provider = i % 3 == 0 ? "anthropic" : "openai",
                Deployment = "openai/bench-model",
                Attempts = 1,
                Status = 200,
                PromptTokens = 120,
                CachedTokens = 20,
                CompletionTokens = 64,
                Cost = 0.000752m,
                LatencyMs = 42.5,
                TimeToFirstTokenMs = 12.25,
                OutputTokensPerSecond = 80,
            };
        }).ToArray();

        await store.WriteAsync(Batch(), CancellationToken.None);
        report.AppendLine("### PostgreSQL usage sink");
        report.AppendLine();
        report.AppendLine("| writers | batch | records | seconds | records/s |");
        report.AppendLine("|---:|---:|---:|---:|---:|");
        foreach (var writers in new[] { 1, 4 })
        {
            var batches = total / BatchSize / writers;
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, writers).Select(_ => Task.Run(async () =>
            {
                for (var b = 0; b < batches; b++)
                {
                    await store.WriteAsync(Batch(), CancellationToken.None);
                }
            })));
            var seconds = clock.Elapsed.TotalSeconds;
            var records = batches * writers * BatchSize;
            report.AppendLine(CultureInfo.InvariantCulture, $"| {writers} | {BatchSize} | {records} | {seconds:F2} | **{records / seconds:F0}** |");
            Console.Error.WriteLine($"usage sink writers={writers}: {records / seconds:F0} records/s");
        }

        report.AppendLine();
    }

    /// <summary>A fresh database for one run, dropped afterwards.</summary>
    private sealed class BenchDatabase : IAsyncDisposable
    {
        private readonly string _admin;
        private readonly string _name;

        private BenchDatabase(string admin, string name, string connectionString)
        {
            _admin = admin;
            _name = name;
            ConnectionString = connectionString;
        }

        public string ConnectionString { get; }

        public static async Task<BenchDatabase> CreateAsync(string admin)
        {
            admin = PostgresDatabase.ConnectionStringFrom(admin);
            var name = "shp_bench_" + Guid.NewGuid().ToString("N")[..12];
            await using (var connection = new NpgsqlConnection(admin))
            {
                await connection.OpenAsync();
                await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
                await create.ExecuteNonQueryAsync();
            }

            return new BenchDatabase(admin, name, new NpgsqlConnectionStringBuilder(admin) { Database = name }.ConnectionString);
        }

        public async ValueTask DisposeAsync()
        {
            NpgsqlConnection.ClearAllPools();
            await using var connection = new NpgsqlConnection(_admin);
            await connection.OpenAsync();
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_name} WITH (FORCE)", connection);
            await drop.ExecuteNonQueryAsync();
        }
    }

    /// <summary>A redis-server on a free loopback port, when no <c>--redis</c> was given.</summary>
    private sealed class PrivateRedis : IAsyncDisposable
    {
        private readonly Process _process;

        private PrivateRedis(Process process, string endpoint)
        {
            _process = process;
            Endpoint = endpoint;
        }

        public string Endpoint { get; }

        public static async Task<PrivateRedis> StartAsync()
        {
            using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
            listener.Start();
            var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            var process = Process.Start(new ProcessStartInfo("redis-server", ["--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            })!;
            process.OutputDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            for (var i = 0; i < 100; i++)
            {
                try
                {
                    using var client = new TcpClient();
                    await client.ConnectAsync("127.0.0.1", port);
                    return new PrivateRedis(process, $"127.0.0.1:{port}");
                }
                catch (SocketException)
                {
                    await Task.Delay(50);
                }
            }

            process.Kill();
            throw new InvalidOperationException("redis-server did not start");
        }

        public async ValueTask DisposeAsync()
        {
            _process.Kill();
            await _process.WaitForExitAsync();
            _process.Dispose();
        }
    }
}
