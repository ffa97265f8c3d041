namespace Shepherd.Server.Hosting;

using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Shepherd.Accounting;
using Shepherd.Configuration;
using Shepherd.Keys;
using Shepherd.Limits;
using Shepherd.Resilience;
using Shepherd.Storage;
using Shepherd.Storage.Postgres;
using Shepherd.Storage.Redis;
using Shepherd.Storage.Sqlite;
using Shepherd.Webhooks;
using StackExchange.Redis;

/// <summary>
/// The two settings that make several instances act as one: <c>storage</c> (SQLite embedded, or PostgreSQL shared)
/// and <c>state</c> (in memory, or Redis shared). See docs/scale-out.md.
/// </summary>
internal static class ScaleOutServices
{
    /// <summary>The database and the stores on it: keys and spend, usage, the webhook queue.</summary>
    public static void AddStorage(IServiceCollection services, ShepherdConfig config)
    {
        var usageBusy = TimeSpan.FromMilliseconds(Math.Min(2000, config.Usage.WriteTimeoutMs));
        if (StorageUrl.IsPostgres(config.Storage))
        {
            services.AddSingleton(_ => new PostgresDatabase(config.Storage)); // a factory: disposed with the host
            services.AddSingleton<IStorageDatabase>(sp => sp.GetRequiredService<PostgresDatabase>());
            services.AddSingleton<PostgresKeyStore>();
            services.AddSingleton<IKeyStore>(sp => sp.GetRequiredService<PostgresKeyStore>());
            services.AddSingleton<ISpendStore>(sp => sp.GetRequiredService<PostgresKeyStore>());
            services.AddSingleton<PostgresUsageStore>();
            services.AddSingleton<IUsageStore>(sp => sp.GetRequiredService<PostgresUsageStore>());
            services.AddSingleton<PostgresWebhookJobStore>();
            services.AddSingleton<IWebhookJobStore>(sp => sp.GetRequiredService<PostgresWebhookJobStore>());
            services.AddSingleton<IWebhookEventQuery>(sp => sp.GetRequiredService<PostgresWebhookJobStore>());
            return;
        }

        services.AddSingleton(new SqliteDatabase(SqliteDatabase.PathFromUrl(config.Storage)));
        services.AddSingleton<IStorageDatabase>(sp => sp.GetRequiredService<SqliteDatabase>());
        services.AddSingleton<SqliteKeyStore>();
        services.AddSingleton<IKeyStore>(sp => sp.GetRequiredService<SqliteKeyStore>());
        services.AddSingleton<ISpendStore>(sp => sp.GetRequiredService<SqliteKeyStore>());
        services.AddSingleton(sp => new SqliteUsageStore(sp.GetRequiredService<SqliteDatabase>(), usageBusy));
        services.AddSingleton<IUsageStore>(sp => sp.GetRequiredService<SqliteUsageStore>());
        services.AddSingleton<SqliteWebhookJobStore>();
        services.AddSingleton<IWebhookJobStore>(sp => sp.GetRequiredService<SqliteWebhookJobStore>());
        services.AddSingleton<IWebhookEventQuery>(sp => sp.GetRequiredService<SqliteWebhookJobStore>());
    }

    /// <summary>Where usage records go when the store cannot take them: beside the SQLite file, else the working directory.</summary>
    /// <remarks>With PostgreSQL give each instance its own <c>usage.spill_path</c> (or working directory).</remarks>
    public static string DefaultSpillPath(IServiceProvider services) =>
        services.GetService<SqliteDatabase>() is { } sqlite
            ? Path.Combine(Path.GetDirectoryName(sqlite.Path) ?? ".", "usage-spill.jsonl")
            : Path.GetFullPath("usage-spill.jsonl");

    /// <summary>Breakers (and, with Redis, the limiter, key sharing and key change notices). Registered after the in-memory limiter, which stays as the fallback.</summary>
    public static void AddSharedState(IServiceCollection services, ShepherdConfig config, TimeProvider time)
    {
        if (config.State.Redis is not { } redis)
        {
            services.AddSingleton<IBreakerStore>(new InMemoryBreakerStore(config.Routing.Breaker));
            return;
        }

        services.AddSingleton<IConnectionMultiplexer>(_ => ConnectionMultiplexer.Connect(RedisState.Options(redis)));
        services.AddSingleton(sp => new RedisState(sp.GetRequiredService<IConnectionMultiplexer>(), config.State, time, sp.GetRequiredService<ILogger<RedisState>>()));
        services.AddHostedService(sp => sp.GetRequiredService<RedisState>());
        services.AddSingleton(sp => new RedisLimiter(
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<InMemoryLimiter>(),
            time,
            sp.GetRequiredService<BudgetCalendar>(),
            config.State.FailOpen,
            sp.GetRequiredService<ILogger<RedisLimiter>>(),
            sp.GetRequiredService<SpendLedger>(),
            config.State.Prefix));
        services.AddSingleton<ILimiter>(sp => sp.GetRequiredService<RedisLimiter>());
        services.AddSingleton<IKeySharing>(sp => new RedisKeySharing(sp.GetRequiredService<RedisState>(), sp.GetRequiredService<RedisLimiter>()));
        services.AddSingleton<IBreakerStore>(sp => new RedisBreakerStore(sp.GetRequiredService<RedisState>(), config.Routing.Breaker, time));
        services.AddSingleton<RedisKeyChanges>();
    }

    /// <summary>After the keys are loaded, before listening: subscribe and read the shared state, so the instance starts in step.</summary>
    /// <remarks>When Redis does not answer the instance starts anyway (degraded) and catches up once it does.</remarks>
    public static async Task StartSharedStateAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        if (services.GetService<RedisState>() is not { } state)
        {
            return;
        }

        services.GetRequiredService<IBreakerStore>();
        services.GetRequiredService<RedisKeyChanges>();
        await state.SyncAsync(cancellationToken);
    }
}
