namespace Shepherd.Tests.Accounting;

using System.Net;
using System.Text;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Shepherd.Accounting;
using Shepherd.Configuration;
using Shepherd.Storage.Sqlite;
using Shepherd.Testing;

/// <summary>The recorder never loses or doubles a record: not with the store locked, not across a torn spill file, not on replay.</summary>
public sealed class UsageRecorderTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("shepherd-recorder-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    private static UsageRecord Record(int i) => new()
    {
        Time = new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.Zero).AddSeconds(i),
        RequestId = $"req_{i:D6}",
        KeyId = "key_a",
        ServedModel = "m",
        Provider = "p",
        Status = 200,
        PromptTokens = 10,
        CompletionTokens = 5,
        Cost = 0.000001m,
    };

    private async Task<(SqliteUsageStore Store, SqliteDatabase Database)> StoreAsync()
    {
        var database = new SqliteDatabase(Path.Combine(_directory, "shepherd.db"));
        await database.MigrateAsync(CancellationToken.None);
        return (new SqliteUsageStore(database, TimeSpan.FromMilliseconds(100)), database);
    }

    private UsageRecorder Recorder(IUsageStore store, string spill) =>
        new(store, new UsageConfig { WriteTimeoutMs = 500, BatchSize = 100 }, spill, TimeProvider.System, NullLogger<UsageRecorder>.Instance);

    private static async Task<long> CountAsync(string databasePath, string sql)
    {
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = databasePath, Pooling = false }.ToString());
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task StoreLockedDuring1000Requests_AfterReleaseEveryRecordStoredExactlyOnce()
    {
        await using var gateway = await GatewayHost.StartAsync("""
            usage: { write_timeout_ms: 100, batch_size: 500, flush_interval_ms: 50 }
            providers: [ { name: sim, type: simulated, simulated: { completion_tokens: 10, response_tokens: 10 } } ]
            models: [ { name: sim-model, price: { input: 1.00, output: 2.00 }, deployments: [ { provider: sim } ] } ]
            """);
        var recorder = UsageRecords.Recorder(gateway);

        // Another connection holds the write lock: every insert the recorder tries fails (busy) until it lets go.
        await using var locker = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = gateway.DatabasePath, Pooling = false }.ToString());
        await locker.OpenAsync();
        await using (var begin = locker.CreateCommand())
        {
            begin.CommandText = "BEGIN EXCLUSIVE";
            await begin.ExecuteNonQueryAsync();
        }

        using var gate = new SemaphoreSlim(32);
        var statuses = await Task.WhenAll(Enumerable.Range(0, 1000).Select(async i =>
        {
            await gate.WaitAsync();
            try
            {
                using var content = new StringContent($$"""{"model":"sim-model","messages":[{"role":"user","content":"request {{i}}"}]}""", Encoding.UTF8, "application/json");
                using var response = await gateway.Client.PostAsync("/v1/chat/completions", content);
                return response.StatusCode;
            }
            finally
            {
                gate.Release();
            }
        }));
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));

        // The writer keeps failing and spilling while the lock is held.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (recorder.Spilled == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.True(recorder.Spilled > 0, "nothing was spilled while the store was locked");
        Assert.Equal(0L, await CountAsync(gateway.DatabasePath!, "SELECT COUNT(*) FROM usage_records"));

        await using (var rollback = locker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK";
            await rollback.ExecuteNonQueryAsync();
        }

        var records = await UsageRecords.WaitForAsync(gateway, 1000);
        Assert.Equal(1000, records.Select(r => r.RequestId).Distinct().Count());
        Assert.Equal(1000, records.Select(r => r.RecordId).Distinct().Count());
        Assert.Equal(1000L, await CountAsync(gateway.DatabasePath!, "SELECT SUM(requests) FROM usage_daily"));
        Assert.Equal(
            await CountAsync(gateway.DatabasePath!, "SELECT SUM(cost_nanos) FROM usage_records"),
            await CountAsync(gateway.DatabasePath!, "SELECT SUM(cost_nanos) FROM usage_daily"));
        Assert.Equal(0, recorder.Dropped);
        Assert.False(File.Exists(recorder.SpillPath));
        Assert.False(File.Exists(recorder.SpillPath + ".replay"));
    }

    [Fact]
    public async Task Stop_StreamInFlight_DrainedStreamIsRecorded()
    {
        await using var upstream = await FakeOpenAI.StartAsync();
        upstream.Faults.Always(new Fault { DelayBetweenEvents = TimeSpan.FromMilliseconds(150) });
        await using var gateway = await GatewayHost.StartAsync($$"""
            providers: [ { name: fake, type: openai, base_url: "{{upstream.BaseUrl}}", api_keys: [ sk-up ] } ]
            models: [ { name: gpt-test, price: { input: 1, output: 1 }, deployments: [ { provider: fake } ] } ]
            """);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
        };
        using var response = await gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = response.Content.ReadAsStringAsync();

        // Graceful shutdown lets the stream finish; its record is written (or spilled) before the process would exit.
        await gateway.StopAsync();
        Assert.EndsWith("data: [DONE]\n\n", await body, StringComparison.Ordinal);

        var recorder = UsageRecords.Recorder(gateway);
        Assert.Equal(0, recorder.Dropped);

        // As after a restart: whatever was spilled is replayed; the stream is there exactly once.
        var database = new SqliteDatabase(gateway.DatabasePath!);
        await Recorder(new SqliteUsageStore(database), recorder.SpillPath).FlushAsync(CancellationToken.None);
        var record = Assert.Single(await UsageRecords.ReadAsync(gateway.DatabasePath!));
        Assert.Equal((200, true, false), (record.Status, record.Streamed, record.Estimated));
    }

    [Fact]
    public async Task Flush_SpillFileWithATornLastLine_NextSpillNotGluedToItAndAllCompleteLinesReplayed()
    {
        var (store, database) = await StoreAsync();
        var spill = Path.Combine(_directory, "spill.jsonl");

        // A crash mid-append left half a line without its newline.
        var failing = new FailingStore();
        var first = Recorder(failing, spill);
        first.Write(Record(1));
        await first.FlushAsync(CancellationToken.None);
        Assert.Equal(1, first.Spilled);
        await File.AppendAllTextAsync(spill, "{\"time\":\"2026-11-22T10:00:00+00:00\",\"request_id\":\"torn");

        first.Write(Record(2));
        await first.FlushAsync(CancellationToken.None);
        Assert.Equal(2, first.Spilled);

        // The store is back: replayed by a new recorder (as after a restart).
        var second = Recorder(store, spill);
        await second.FlushAsync(CancellationToken.None);
        Assert.Equal(2, second.Replayed);
        Assert.Equal(2L, await CountAsync(database.Path, "SELECT COUNT(*) FROM usage_records"));
        Assert.False(File.Exists(spill));
    }

    [Fact]
    public async Task Flush_ReplayFileLeftByAnInterruptedReplay_IsReplayedWithoutDoubles()
    {
        var (store, database) = await StoreAsync();
        var spill = Path.Combine(_directory, "spill.jsonl");
        var failing = new FailingStore();
        var recorder = Recorder(failing, spill);
        for (var i = 0; i < 5; i++)
        {
            recorder.Write(Record(i));
        }

        await recorder.FlushAsync(CancellationToken.None);

        // A replay the process did not live to finish: the file was moved aside and three of the five reached the store.
        File.Move(spill, spill + ".replay");
        await store.WriteAsync([Record(0), Record(1), Record(2)], CancellationToken.None);

        var restarted = Recorder(store, spill);
        await restarted.FlushAsync(CancellationToken.None);

        Assert.Equal(2, restarted.Replayed);
        Assert.Equal(5L, await CountAsync(database.Path, "SELECT COUNT(*) FROM usage_records"));
        Assert.Equal(5L, await CountAsync(database.Path, "SELECT SUM(requests) FROM usage_daily"));
        Assert.False(File.Exists(spill + ".replay"));
    }

    [Fact]
    public async Task Flush_SpilledWhileAReplayFailed_BothFilesReplayedInOneFlush()
    {
        var (store, database) = await StoreAsync();
        var spill = Path.Combine(_directory, "spill.jsonl");
        var switchable = new FailingStore();
        var recorder = Recorder(switchable, spill);
        recorder.Write(Record(1));
        await recorder.FlushAsync(CancellationToken.None); // spilled
        File.Move(spill, spill + ".replay"); // a replay began and failed: the file stays aside
        recorder.Write(Record(2));
        await recorder.FlushAsync(CancellationToken.None); // spilled to a fresh spill.jsonl
        Assert.True(File.Exists(spill + ".replay"));
        Assert.True(File.Exists(spill));

        switchable.Inner = store;
        await recorder.FlushAsync(CancellationToken.None);

        Assert.Equal(2L, await CountAsync(database.Path, "SELECT COUNT(*) FROM usage_records"));
        Assert.False(File.Exists(spill));
        Assert.False(File.Exists(spill + ".replay"));
    }

    /// <summary>A store that is down until <see cref="Inner"/> is set.</summary>
    private sealed class FailingStore : IUsageStore
    {
        public IUsageStore? Inner { get; set; }

        public Task<int> WriteAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken) =>
            Inner?.WriteAsync(records, cancellationToken) ?? throw new IOException("store down");

        public Task<int> PurgeAsync(DateTimeOffset before, CancellationToken cancellationToken) =>
            Inner?.PurgeAsync(before, cancellationToken) ?? throw new IOException("store down");

        public Task<IReadOnlyList<UsageRow>> QueryAsync(UsageQuery query, CancellationToken cancellationToken) =>
            Inner?.QueryAsync(query, cancellationToken) ?? throw new IOException("store down");
    }
}
