namespace Shepherd.Tests.Storage.Postgres;

using Npgsql;
using Shepherd.Accounting;
using Shepherd.Keys;
using Shepherd.Storage;
using Shepherd.Storage.Postgres;
using Shepherd.Testing;

/// <summary>The store contract against a real PostgreSQL server, plus what only a shared database must get right:
/// several instances migrating, saving spend and writing usage at the same time.</summary>
public sealed class PostgresStoreTests : StoreContractTests
{
    private TestDatabase _testDatabase = null!;
    private PostgresDatabase _database = null!;

    protected override async Task<(IStorageDatabase Database, IKeyStore Keys, ISpendStore Spend, IUsageStore Usage)> CreateAsync()
    {
        var server = await PostgresServer.StartAsync();
        _testDatabase = await server.CreateDatabaseAsync();
        _database = new PostgresDatabase(_testDatabase.ConnectionString);
        var keys = new PostgresKeyStore(_database);
        return (_database, keys, keys, new PostgresUsageStore(_database));
    }

    protected override async Task DestroyAsync()
    {
        await _database.DisposeAsync();
        await _testDatabase.DisposeAsync();
    }

    [Fact]
    public async Task Migrate_FiveInstancesAtOnce_EachMigrationAppliedOnce()
    {
        await using var fresh = await (await PostgresServer.StartAsync()).CreateDatabaseAsync();
        var instances = Enumerable.Range(0, 5).Select(_ => new PostgresDatabase(fresh.ConnectionString)).ToArray();
        try
        {
            await Task.WhenAll(instances.Select(i => i.MigrateAsync(CancellationToken.None)));

            await using var command = instances[0].DataSource.CreateCommand("SELECT count(*) FROM schema_migrations");
            Assert.Equal((long)PostgresDatabase.Migrations().Count(), (long)(await command.ExecuteScalarAsync())!);
        }
        finally
        {
            foreach (var instance in instances)
            {
                await instance.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Apply_ThreeInstancesSavingAtOnce_SpendAndCreditExact()
    {
        await Keys.InsertAsync(Record("key_a", new string('a', 64)) with { CreditBalance = 100m }, CancellationToken.None);
        await Keys.InsertAsync(Record("key_b", new string('b', 64)) with { CreditBalance = 100m }, CancellationToken.None);
        var day = new DateOnly(2026, 11, 22);
        var stores = Enumerable.Range(0, 3).Select(_ => new PostgresKeyStore(_database)).ToArray();

        // Each "instance" saves both keys, in opposite orders, 30 times: the sums must be exact and nothing may deadlock.
        await Task.WhenAll(Enumerable.Range(0, 90).Select(i => stores[i % 3].ApplyAsync(
            i % 2 == 0
                ? [new SpendDelta("key_a", day, 0.001m, 0.001m), new SpendDelta("key_b", day, 0.002m, 0.002m)]
                : [new SpendDelta("key_b", day, 0.002m, 0.002m), new SpendDelta("key_a", day, 0.001m, 0.001m)],
            CancellationToken.None)));

        var spend = (await Spend.LoadAsync(day, CancellationToken.None)).ToDictionary(s => s.KeyId);
        Assert.Equal(0.09m, spend["key_a"].Today);
        Assert.Equal(0.18m, spend["key_b"].Total);
        Assert.Equal(99.91m, (await Keys.GetAsync("key_a", CancellationToken.None))!.CreditBalance);
        Assert.Equal(99.82m, (await Keys.GetAsync("key_b", CancellationToken.None))!.CreditBalance);
    }

    [Fact]
    public async Task Write_ThreeInstancesReplayingTheSameRecords_EachStoredAndRolledUpOnce()
    {
        var records = Enumerable.Range(0, 600).Select(i => Use($"req-{i:D4}", Noon.AddSeconds(i), i % 2 == 0 ? "key_a" : "key_b")).ToArray();
        var stores = Enumerable.Range(0, 3).Select(_ => new PostgresUsageStore(_database)).ToArray();

        // Overlapping batches in different orders from three writers.
        var inserted = await Task.WhenAll(Enumerable.Range(0, 12).Select(i =>
            stores[i % 3].WriteAsync(records.Skip(i * 50 % 400).Take(200).Reverse().ToArray(), CancellationToken.None)));
        inserted = [.. inserted, await stores[0].WriteAsync(records, CancellationToken.None)];

        Assert.Equal(600, inserted.Sum());
        var byKey = await Usage.QueryAsync(new UsageQuery(Noon.AddDays(-1), Noon.AddDays(1), UsageGrouping.Key), CancellationToken.None);
        Assert.Equal([300L, 300L], byKey.Select(r => r.Requests));
        Assert.Equal(600 * 0.000001234m, byKey.Sum(r => r.Cost));
        await using var count = _database.DataSource.CreateCommand("SELECT count(*) FROM usage_records");
        Assert.Equal(600L, (long)(await count.ExecuteScalarAsync())!);
    }

    [Fact]
    public void ConnectionStringFrom_Url_TranslatedWithEscapesAndOptions()
    {
        var text = PostgresDatabase.ConnectionStringFrom("postgres://shep%40herd:p%3Ass%2Fw@db.internal:6543/shepherd_prod?sslmode=require&application_name=gw1");
        var builder = new NpgsqlConnectionStringBuilder(text);
        Assert.Equal("db.internal", builder.Host);
        Assert.Equal(6543, builder.Port);
        Assert.Equal("shep@herd", builder.Username);
        Assert.Equal("p:ss/w", builder.Password);
        Assert.Equal("shepherd_prod", builder.Database);
        Assert.Equal(SslMode.Require, builder.SslMode);
        Assert.Equal("gw1", builder.ApplicationName);
        Assert.Equal(5, builder.Timeout);

        var plain = new NpgsqlConnectionStringBuilder(PostgresDatabase.ConnectionStringFrom("Host=h;Database=d;Username=u;Timeout=9"));
        Assert.Equal(("h", "d", 9, "shepherd"), (plain.Host, plain.Database, plain.Timeout, plain.ApplicationName));
        Assert.Equal(5432, new NpgsqlConnectionStringBuilder(PostgresDatabase.ConnectionStringFrom("postgresql://u@h/d")).Port);
    }

    [Fact]
    public async Task Ping_ServerUnreachable_FalseQuickly()
    {
        await using var database = new PostgresDatabase($"Host=127.0.0.1;Port={RedisServer.FreePort()};Username=postgres;Database=postgres");
        Assert.False(await database.PingAsync(CancellationToken.None));
    }
}
