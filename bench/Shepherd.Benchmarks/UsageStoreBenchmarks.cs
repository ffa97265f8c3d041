namespace Shepherd.Benchmarks;

using BenchmarkDotNet.Attributes;
using Shepherd.Accounting;
using Shepherd.Storage.Sqlite;

/// <summary>
/// The embedded usage sink: one batch of 1,000 records (one transaction, WAL, synchronous=NORMAL; one block row, the ids
/// claimed, hourly and daily rollups) into a real SQLite
/// file, as the usage recorder writes them under load. Divide by 1,000 for the cost per request.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class UsageStoreBenchmarks
{
    private const int Batch = 1000;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "shepherd-bench-usage-" + Guid.NewGuid().ToString("N"));
    private SqliteUsageStore _store = null!;
    private UsageRecord[] _template = null!;
    private UsageRecord[] _batch = null!;
    private long _next;

    [GlobalSetup]
    public void Setup()
    {
        var database = new SqliteDatabase(Path.Combine(_directory, "usage.db"));
        database.MigrateAsync(CancellationToken.None).GetAwaiter().GetResult();
        _store = new SqliteUsageStore(database);
        var time = new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);

        // What a virtual key's traffic looks like: one key and team, one model and deployment, small variations.
        _template = Enumerable.Range(0, Batch).Select(i => new UsageRecord
        {
            Time = time.AddMilliseconds(i),
            RequestId = string.Empty,
            KeyId = "key_0123456789abcdef",
            Team = "platform",
            RequestedModel = "gpt-4.1",
            ServedModel = "gpt-4.1",
            Provider = "openai",
            Deployment = "openai/gpt-4.1",
            Attempts = 1,
            Status = 200,
            PromptTokens = 120 + (i % 7),
            CompletionTokens = 48 + (i % 5),
            Cost = 0.000624m,
            LatencyMs = 812.5,
            TimeToFirstTokenMs = 120.25,
            OutputTokensPerSecond = 61.5,
        }).ToArray();
        _batch = new UsageRecord[Batch];
    }

    [IterationSetup]
    public void NewIds()
    {
        // Every measured batch is new records (ids as the gateway makes them), not replays that SQLite would ignore.
        for (var i = 0; i < Batch; i++)
        {
            var id = $"req_bench{_next++:x16}";
            _batch[i] = _template[i] with { RequestId = id, RecordId = id };
        }
    }

    [Benchmark(Description = "SQLite usage sink: write a batch of 1,000 records (+ hourly and daily rollups)", OperationsPerInvoke = Batch)]
    public Task<int> WriteBatch() => _store.WriteAsync(_batch, CancellationToken.None);

    [GlobalCleanup]
    public void Cleanup()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }
}
