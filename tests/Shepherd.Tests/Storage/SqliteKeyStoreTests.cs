namespace Shepherd.Tests.Storage;

using Shepherd.Keys;
using Shepherd.Storage.Sqlite;

public sealed class SqliteKeyStoreTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("shepherd-sqlite-").FullName;

    private string DbPath => Path.Combine(_directory, "shepherd.db");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    private static VirtualKeyRecord Record(string id, string hash) => new()
    {
        Id = id,
        Name = "name " + id,
        Team = "team-a",
        Hash = hash,
        Display = "sk-shp-AbCd…wxyz",
        CreatedAt = new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.Zero),
        ExpiresAt = new DateTimeOffset(2027, 1, 1, 0, 0, 0, TimeSpan.Zero),
        AllowedModels = ["gpt-*", "claude"],
        IpAllowlist = ["10.0.0.0/8", "2001:db8::/32"],
        Rpm = 60,
        Tpm = 100_000,
        MaxParallel = 4,
        DailyBudget = 1.5m,
        MonthlyBudget = 30m,
        TotalBudget = 100m,
        CreditBalance = 12.345678m,
        Metadata = new Dictionary<string, string> { ["owner"] = "ops@example.com" },
    };

    [Fact]
    public async Task Migrate_RunTwice_IsIdempotentAndRecordsVersions()
    {
        var database = new SqliteDatabase(DbPath);
        await database.MigrateAsync(CancellationToken.None);
        await database.MigrateAsync(CancellationToken.None);
        await using var connection = await database.OpenAsync(CancellationToken.None);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM schema_migrations";
        Assert.Equal(SqliteDatabase.Migrations().Count(), Convert.ToInt32(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture));
        command.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", (string?)await command.ExecuteScalarAsync());
    }

    [Fact]
    public async Task InsertLoad_RoundTripsEveryField()
    {
        var database = new SqliteDatabase(DbPath);
        await database.MigrateAsync(CancellationToken.None);
        var store = new SqliteKeyStore(database);
        var record = Record("key_a", new string('a', 64));
        await store.InsertAsync(record, CancellationToken.None);

        var loaded = Assert.Single(await store.LoadAllAsync(CancellationToken.None));
        Assert.Equal(record with { AllowedModels = loaded.AllowedModels, IpAllowlist = loaded.IpAllowlist, Metadata = loaded.Metadata }, loaded);
        Assert.Equal(record.AllowedModels, loaded.AllowedModels);
        Assert.Equal(record.IpAllowlist, loaded.IpAllowlist);
        Assert.Equal("ops@example.com", loaded.Metadata["owner"]);
    }

    [Fact]
    public async Task ApplyAndTopUp_SpendAndBalanceExact()
    {
        var database = new SqliteDatabase(DbPath);
        await database.MigrateAsync(CancellationToken.None);
        var store = new SqliteKeyStore(database);
        await store.InsertAsync(Record("key_a", new string('a', 64)), CancellationToken.None);
        var day = new DateOnly(2026, 11, 22);
        await store.ApplyAsync([new SpendDelta("key_a", day, 0.1m, 0.1m), new SpendDelta("key_a", day, 0.2m, 0.2m), new SpendDelta("key_a", day.AddDays(-1), 1m, 0m)], CancellationToken.None);

        var spend = Assert.Single(await store.LoadAsync(day, CancellationToken.None));
        Assert.Equal(0.3m, spend.Today);
        Assert.Equal(1.3m, spend.ThisMonth);
        Assert.Equal(1.3m, spend.Total);
        Assert.Equal(12.345678m + 5m - 0.3m, await store.TopUpAsync("key_a", 5m, CancellationToken.None));
        Assert.Equal(17.045678m, Assert.Single(await store.LoadAllAsync(CancellationToken.None)).CreditBalance);
    }
}
