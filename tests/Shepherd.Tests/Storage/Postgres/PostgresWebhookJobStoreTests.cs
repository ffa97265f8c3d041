namespace Shepherd.Tests.Storage.Postgres;

using System.Text;
using Npgsql;
using Shepherd.Storage.Postgres;
using Shepherd.Testing;
using Shepherd.Webhooks;

/// <summary>The job store contract against a real PostgreSQL server, plus what only a server-side queue must get right.</summary>
public sealed class PostgresWebhookJobStoreTests : WebhookJobStoreContractTests
{
    private TestDatabase _testDatabase = null!;
    private readonly List<PostgresDatabase> _databases = [];

    protected override async Task CreateDatabaseAsync()
    {
        _testDatabase = await (await PostgresServer.StartAsync()).CreateDatabaseAsync();
        await Connect().MigrateAsync(CancellationToken.None);
    }

    /// <summary>Each instance with its own data source (its own connection pool), as separate processes have.</summary>
    protected override IWebhookJobStore OpenStore() => new PostgresWebhookJobStore(Connect());

    protected override async Task DestroyDatabaseAsync()
    {
        foreach (var database in _databases)
        {
            await database.DisposeAsync();
        }

        await _testDatabase.DisposeAsync();
    }

    private PostgresDatabase Connect()
    {
        var database = new PostgresDatabase(_testDatabase.ConnectionString);
        _databases.Add(database);
        return database;
    }

    [Fact]
    public async Task Enqueue_DatabaseDefaultsToAsynchronousCommit_AcknowledgedEventsCommittedSynchronously()
    {
        // A database tuned for other workloads (synchronous_commit off) must not weaken an acknowledgement: every write
        // of the store turns it back on for its own transaction (checked from inside such a transaction).
        await using (var admin = new NpgsqlConnection(_testDatabase.ConnectionString))
        {
            await admin.OpenAsync();
            await using var alter = new NpgsqlCommand($"ALTER DATABASE {_testDatabase.Name} SET synchronous_commit = off", admin);
            await alter.ExecuteNonQueryAsync();
        }

        var store = (PostgresWebhookJobStore)OpenStore();
        Assert.Equal([true], await store.EnqueueAsync([Draft("a")], T0, CancellationToken.None));
        Assert.Equal("on", await store.CommitSettingAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Enqueue_OneBatchOfAThousandWithRepeats_EachStoredOnceWithItsOwnPayload()
    {
        var drafts = Enumerable.Range(0, 1000).Select(i => new WebhookEventDraft("twill", $"evt-{999 - i:D4}", "agent.completed", Encoding.UTF8.GetBytes($"{{\"n\":{i}}}"))).ToArray();

        var stored = await Store.EnqueueAsync([.. drafts, drafts[10], drafts[500]], T0, CancellationToken.None);

        Assert.Equal(1000, stored.Count(s => s));
        Assert.False(stored[1000]);
        Assert.False(stored[1001]);
        var leased = await Store.LeaseAsync(Sources, 1000, T0, TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.All(leased, j => Assert.Equal($"{{\"n\":{999 - int.Parse(j.EventId[4..], System.Globalization.CultureInfo.InvariantCulture)}}}", Encoding.UTF8.GetString(j.Payload.Span)));
    }

    [Fact]
    public async Task Enqueue_LargeBodiesSpreadOverSeveralStatements_StoredWholeAndARepeatInALaterStatementRefused()
    {
        // 32 bodies of 1 MiB fill the first statement; the repeat of the last one lands in the second.
        var drafts = Enumerable.Range(0, 32).Select(i => new WebhookEventDraft("twill", $"big-{i:D2}", "agent.completed", Body(i))).ToArray();

        var stored = await Store.EnqueueAsync([drafts[31], .. drafts], T0, CancellationToken.None);

        Assert.Equal([true, .. Enumerable.Repeat(true, 31), false], stored);
        var leased = await Store.LeaseAsync(Sources, 100, T0, TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.Equal(32, leased.Count);
        Assert.All(leased, j => Assert.True(j.Payload.Span.SequenceEqual(Body(int.Parse(j.EventId[4..], System.Globalization.CultureInfo.InvariantCulture)))));

        static byte[] Body(int i)
        {
            var body = new byte[1 << 20];
            Array.Fill(body, (byte)('a' + i % 26));
            return body;
        }
    }
}
