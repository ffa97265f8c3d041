namespace Shepherd.Storage.Postgres;

using System.Globalization;
using System.Reflection;
using Npgsql;

/// <summary>
/// A PostgreSQL database shared by every instance: one pooled <see cref="NpgsqlDataSource"/>, schema created and
/// migrated at start-up from the versioned scripts in <c>Postgres/Migrations</c> — under an advisory lock, so several
/// instances starting at once apply each migration exactly once.
/// </summary>
public sealed class PostgresDatabase : IStorageDatabase, IAsyncDisposable
{
    // Any fixed 64-bit number: the lock that serialises migrations across instances ("shepherd" in ASCII).
    private const long MigrationLock = 0x7368657068657264;

    public PostgresDatabase(string storage)
    {
        var builder = new NpgsqlDataSourceBuilder(ConnectionStringFrom(storage));
        DataSource = builder.Build();
    }

    public NpgsqlDataSource DataSource { get; }

    public string Kind => "postgres";

    public bool IsShared => true;

    /// <summary>
    /// Turns <c>postgres://user:password@host:port/db?sslmode=require</c> into an Npgsql connection string; an Npgsql
    /// connection string is returned as it is. Defaults that suit a gateway are added when not set.
    /// </summary>
    public static string ConnectionStringFrom(string storage)
    {
        NpgsqlConnectionStringBuilder builder;
        bool timeoutSet;
        if (storage.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || storage.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase))
        {
            var uri = new Uri(storage);
            builder = new NpgsqlConnectionStringBuilder
            {
                Host = uri.Host.Trim('[', ']'),
                Port = uri.IsDefaultPort || uri.Port <= 0 ? 5432 : uri.Port,
                Database = Uri.UnescapeDataString(uri.AbsolutePath.Trim('/')),
            };
            if (uri.UserInfo.Length > 0)
            {
                var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
                builder.Username = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]);
                if (colon >= 0)
                {
                    builder.Password = Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
                }
            }

            timeoutSet = uri.Query.Contains("connect_timeout", StringComparison.OrdinalIgnoreCase);
            foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                var eq = pair.IndexOf('=', StringComparison.Ordinal);
                var name = Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq]);
                var value = eq < 0 ? "true" : Uri.UnescapeDataString(pair[(eq + 1)..]);
                builder[name.ToLowerInvariant() switch
                {
                    "sslmode" => "SSL Mode",
                    "connect_timeout" => "Timeout",
                    "application_name" => "Application Name",
                    "search_path" => "Search Path",
                    "target_session_attrs" => "Target Session Attributes",
                    _ => name,
                }] = value;
            }
        }
        else
        {
            builder = new NpgsqlConnectionStringBuilder(storage);
            timeoutSet = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = storage }.ContainsKey("timeout");
        }

        if (string.IsNullOrEmpty(builder.ApplicationName))
        {
            builder.ApplicationName = "shepherd";
        }

        // Fail fast when the server is away: the usage recorder spills and readiness reports it, nothing waits long.
        if (!timeoutSet)
        {
            builder.Timeout = 5;
        }

        return builder.ConnectionString;
    }

    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        await using (var lockCommand = new NpgsqlCommand($"SELECT pg_advisory_lock({MigrationLock})", connection))
        {
            await lockCommand.ExecuteNonQueryAsync(cancellationToken);
        }

        try
        {
            await using (var create = new NpgsqlCommand("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())", connection))
            {
                await create.ExecuteNonQueryAsync(cancellationToken);
            }

            var applied = new HashSet<int>();
            await using (var query = new NpgsqlCommand("SELECT version FROM schema_migrations", connection))
            await using (var reader = await query.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    applied.Add(reader.GetInt32(0));
                }
            }

            foreach (var (version, name, sql) in Migrations())
            {
                if (applied.Contains(version))
                {
                    continue;
                }

                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                await using (var command = new NpgsqlCommand(sql, connection, transaction))
                {
                    await command.ExecuteNonQueryAsync(cancellationToken);
                }

                await using (var record = new NpgsqlCommand("INSERT INTO schema_migrations (version, name) VALUES (@v, @n)", connection, transaction))
                {
                    record.Parameters.AddWithValue("v", version);
                    record.Parameters.AddWithValue("n", name);
                    await record.ExecuteNonQueryAsync(cancellationToken);
                }

                await transaction.CommitAsync(cancellationToken);
            }
        }
        finally
        {
            await using var unlock = new NpgsqlCommand($"SELECT pg_advisory_unlock({MigrationLock})", connection);
            await unlock.ExecuteNonQueryAsync(CancellationToken.None);
        }
    }

    public async Task<bool> PingAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            await using var command = DataSource.CreateCommand("SELECT 1");
            return Convert.ToInt32(await command.ExecuteScalarAsync(timeout.Token), CultureInfo.InvariantCulture) == 1;
        }
        catch (Exception ex) when (ex is NpgsqlException or OperationCanceledException or TimeoutException or InvalidOperationException)
        {
            return false;
        }
    }

    public ValueTask DisposeAsync() => DataSource.DisposeAsync();

    internal static IEnumerable<(int Version, string Name, string Sql)> Migrations()
    {
        var assembly = Assembly.GetExecutingAssembly();
        const string Prefix = "Postgres.Migrations.";
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var name = resource[Prefix.Length..^".sql".Length];
            var version = int.Parse(name.AsSpan(0, name.IndexOf('_', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream);
            yield return (version, name, reader.ReadToEnd());
        }
    }
}
