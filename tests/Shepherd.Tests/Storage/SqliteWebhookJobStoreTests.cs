namespace Shepherd.Tests.Storage;

using Microsoft.Data.Sqlite;
using Shepherd.Storage.Sqlite;
using Shepherd.Webhooks;

/// <summary>The job store contract against the embedded SQLite database, plus its group writer.</summary>
public sealed class SqliteWebhookJobStoreTests : WebhookJobStoreContractTests
{
    private readonly string _directory = Directory.CreateTempSubdirectory("shepherd-jobs-").FullName;
    private SqliteDatabase _database = null!;

    protected override async Task CreateDatabaseAsync()
    {
        _database = new SqliteDatabase(Path.Combine(_directory, "shepherd.db"));
        await _database.MigrateAsync(CancellationToken.None);
    }

    protected override IWebhookJobStore OpenStore() => new SqliteWebhookJobStore(_database);

    protected override Task DestroyDatabaseAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task GroupWriter_OneOperationThrows_OnlyItIsRolledBackTheOthersCommitTogether()
    {
        var database = new SqliteDatabase(Path.Combine(_directory, "writer.db"));
        await database.MigrateAsync(CancellationToken.None);
        await using var writer = new SqliteGroupWriter(database);
        Task<int> Insert(string id, bool fail) => writer.WriteAsync(async (connection, transaction) =>
        {
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "INSERT INTO webhook_events (source, event_id, event_type, payload, received_at) VALUES ('s', $id, 't', x'7b7d', 0)";
            command.Parameters.AddWithValue("$id", id);
            await command.ExecuteNonQueryAsync();
            return fail ? throw new InvalidOperationException("boom") : 1;
        });

        var tasks = Enumerable.Range(0, 200).Select(i => Insert($"e{i}", fail: i == 100)).ToArray();
        await Assert.ThrowsAsync<InvalidOperationException>(() => tasks[100]);
        await Task.WhenAll(tasks.Where((_, i) => i != 100));

        await using var connection = await database.OpenAsync(CancellationToken.None);
        await using var count = connection.CreateCommand();
        count.CommandText = "SELECT COUNT(*), SUM(event_id = 'e100') FROM webhook_events";
        await using var reader = await count.ExecuteReaderAsync();
        await reader.ReadAsync();
        Assert.Equal(199, reader.GetInt64(0));
        Assert.Equal(0, reader.GetInt64(1));
        Assert.True(writer.Commits < 200, $"{writer.Commits} commits for 200 writes: no grouping");
    }
}
