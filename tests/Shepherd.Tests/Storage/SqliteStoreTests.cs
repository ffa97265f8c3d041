namespace Shepherd.Tests.Storage;

using Shepherd.Accounting;
using Shepherd.Keys;
using Shepherd.Storage;
using Shepherd.Storage.Sqlite;

/// <summary>The store contract against the embedded SQLite database.</summary>
public sealed class SqliteStoreTests : StoreContractTests
{
    private readonly string _directory = Directory.CreateTempSubdirectory("shepherd-sqlite-").FullName;

    private SqliteDatabase _database = null!;

    protected override Task<(IStorageDatabase Database, IKeyStore Keys, ISpendStore Spend, IUsageStore Usage)> CreateAsync()
    {
        _database = new SqliteDatabase(Path.Combine(_directory, "shepherd.db"));
        var keys = new SqliteKeyStore(_database);
        return Task.FromResult<(IStorageDatabase, IKeyStore, ISpendStore, IUsageStore)>((_database, keys, keys, new SqliteUsageStore(_database)));
    }

    protected override Task DestroyAsync()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Migrate_RecordsVersionsInWalMode()
    {
        await using var connection = await _database.OpenAsync(CancellationToken.None);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM schema_migrations";
        Assert.Equal(SqliteDatabase.Migrations().Count(), Convert.ToInt32(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture));
        command.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", (string?)await command.ExecuteScalarAsync());
    }
}
