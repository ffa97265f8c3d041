namespace Shepherd.Storage.Postgres;

using System.Globalization;
using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Shepherd.Keys;
using Shepherd.Storage.Sqlite;

/// <summary>Virtual keys and their spend counters in PostgreSQL. Money is <c>numeric</c>: additions are exact in SQL.</summary>
public sealed class PostgresKeyStore(PostgresDatabase database) : IKeyStore, ISpendStore
{
    private const string Columns =
        "id, name, team, key_hash, display, created_at, expires_at, enabled, revoked_at, allowed_models::text, ip_allowlist::text, rpm, tpm, max_parallel, daily_budget, monthly_budget, total_budget, credit_balance, metadata::text";

    private NpgsqlDataSource Source => database.DataSource;

    public async Task<IReadOnlyList<VirtualKeyRecord>> LoadAllAsync(CancellationToken cancellationToken)
    {
        await using var command = Source.CreateCommand($"SELECT {Columns} FROM virtual_keys ORDER BY created_at, id");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var keys = new List<VirtualKeyRecord>();
        while (await reader.ReadAsync(cancellationToken))
        {
            keys.Add(Read(reader));
        }

        return keys;
    }

    public async Task<VirtualKeyRecord?> GetAsync(string id, CancellationToken cancellationToken)
    {
        await using var command = Source.CreateCommand($"SELECT {Columns} FROM virtual_keys WHERE id = @id");
        command.Parameters.AddWithValue("id", id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    public async Task InsertAsync(VirtualKeyRecord key, CancellationToken cancellationToken)
    {
        await using var command = Source.CreateCommand("""
            INSERT INTO virtual_keys (id, name, team, key_hash, display, created_at, expires_at, enabled, revoked_at, allowed_models,
              ip_allowlist, rpm, tpm, max_parallel, daily_budget, monthly_budget, total_budget, credit_balance, metadata)
            VALUES (@id, @name, @team, @hash, @display, @created, @expires, @enabled, @revoked, @models, @ips, @rpm, @tpm, @parallel,
              @daily, @monthly, @total, @credit, @metadata)
            """);
        Bind(command, key);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task UpdateAsync(VirtualKeyRecord key, CancellationToken cancellationToken)
    {
        // The hash and creation time never change; the credit balance changes only through TopUpAsync/ApplyAsync.
        await using var command = Source.CreateCommand("""
            UPDATE virtual_keys SET name=@name, team=@team, expires_at=@expires, enabled=@enabled, revoked_at=@revoked,
              allowed_models=@models, ip_allowlist=@ips, rpm=@rpm, tpm=@tpm, max_parallel=@parallel,
              daily_budget=@daily, monthly_budget=@monthly, total_budget=@total, metadata=@metadata,
              credit_balance = CASE WHEN @credit IS NULL THEN NULL ELSE COALESCE(credit_balance, @credit) END
            WHERE id=@id
            """);
        Bind(command, key);
        if (await command.ExecuteNonQueryAsync(cancellationToken) == 0)
        {
            throw new KeyNotFoundException($"No key with id '{key.Id}'.");
        }
    }

    public async Task<decimal> TopUpAsync(string keyId, decimal amount, CancellationToken cancellationToken)
    {
        await using var command = Source.CreateCommand("UPDATE virtual_keys SET credit_balance = COALESCE(credit_balance, 0) + @a WHERE id = @id RETURNING credit_balance");
        command.Parameters.AddWithValue("a", NpgsqlDbType.Numeric, amount);
        command.Parameters.AddWithValue("id", keyId);
        return await command.ExecuteScalarAsync(cancellationToken) is decimal balance
            ? balance
            : throw new KeyNotFoundException($"No key with id '{keyId}'.");
    }

    public async Task<IReadOnlyList<KeySpend>> LoadAsync(DateOnly day, CancellationToken cancellationToken)
    {
        await using var command = Source.CreateCommand("SELECT key_id, period, spend FROM key_spend WHERE period IN (@d, @m, 'total')");
        command.Parameters.AddWithValue("d", DayPeriod(day));
        command.Parameters.AddWithValue("m", MonthPeriod(day));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var byKey = new Dictionary<string, (decimal Day, decimal Month, decimal Total)>(StringComparer.Ordinal);
        while (await reader.ReadAsync(cancellationToken))
        {
            var key = reader.GetString(0);
            var period = reader.GetString(1);
            var spend = reader.GetDecimal(2);
            var entry = byKey.GetValueOrDefault(key);
            if (period.StartsWith("d:", StringComparison.Ordinal))
            {
                entry.Day = spend;
            }
            else if (period.StartsWith("m:", StringComparison.Ordinal))
            {
                entry.Month = spend;
            }
            else
            {
                entry.Total = spend;
            }

            byKey[key] = entry;
        }

        return byKey.Select(p => new KeySpend(p.Key, p.Value.Day, p.Value.Month, p.Value.Total)).ToArray();
    }

    public async Task ApplyAsync(IReadOnlyList<SpendDelta> deltas, CancellationToken cancellationToken)
    {
        if (deltas.Count == 0)
        {
            return;
        }

        // Summed per row first (one statement may not update a row twice), then written in key order, so two
        // instances saving at once lock the same rows in the same order and never deadlock.
        var totals = new SortedDictionary<(string Key, string Period), decimal>();
        var credits = new SortedDictionary<string, decimal>(StringComparer.Ordinal);
        foreach (var delta in deltas)
        {
            Add(totals, (delta.KeyId, DayPeriod(delta.Day)), delta.Amount);
            Add(totals, (delta.KeyId, MonthPeriod(delta.Day)), delta.Amount);
            Add(totals, (delta.KeyId, "total"), delta.Amount);
            if (delta.Credit != 0m)
            {
                credits[delta.KeyId] = credits.GetValueOrDefault(delta.KeyId) + delta.Credit;
            }
        }

        await using var connection = await Source.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var upsert = new NpgsqlCommand(
            """
            INSERT INTO key_spend (key_id, period, spend)
            SELECT * FROM unnest(@k, @p, @s)
            ON CONFLICT (key_id, period) DO UPDATE SET spend = key_spend.spend + excluded.spend
            """,
            connection,
            transaction))
        {
            upsert.Parameters.AddWithValue("k", totals.Keys.Select(k => k.Key).ToArray());
            upsert.Parameters.AddWithValue("p", totals.Keys.Select(k => k.Period).ToArray());
            upsert.Parameters.AddWithValue("s", NpgsqlDbType.Array | NpgsqlDbType.Numeric, totals.Values.ToArray());
            await upsert.ExecuteNonQueryAsync(cancellationToken);
        }

        if (credits.Count > 0)
        {
            await using var debit = new NpgsqlCommand(
                """
                UPDATE virtual_keys v SET credit_balance = v.credit_balance - d.amount
                FROM unnest(@k, @a) AS d(id, amount)
                WHERE v.id = d.id AND v.credit_balance IS NOT NULL
                """,
                connection,
                transaction);
            debit.Parameters.AddWithValue("k", credits.Keys.ToArray());
            debit.Parameters.AddWithValue("a", NpgsqlDbType.Array | NpgsqlDbType.Numeric, credits.Values.ToArray());
            await debit.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    private static void Add<TKey>(IDictionary<TKey, decimal> totals, TKey key, decimal amount) =>
        totals[key] = (totals.TryGetValue(key, out var current) ? current : 0m) + amount;

    private static string DayPeriod(DateOnly day) => "d:" + day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private static string MonthPeriod(DateOnly day) => "m:" + day.ToString("yyyy-MM", CultureInfo.InvariantCulture);

    private static void Bind(NpgsqlCommand command, VirtualKeyRecord key)
    {
        static object Value<T>(T? value) where T : struct => value is { } v ? v : DBNull.Value;
        var p = command.Parameters;
        p.AddWithValue("id", key.Id);
        p.AddWithValue("name", key.Name);
        p.AddWithValue("team", NpgsqlDbType.Text, (object?)key.Team ?? DBNull.Value);
        p.AddWithValue("hash", key.Hash);
        p.AddWithValue("display", key.Display);
        p.AddWithValue("created", NpgsqlDbType.TimestampTz, key.CreatedAt.ToUniversalTime());
        p.AddWithValue("expires", NpgsqlDbType.TimestampTz, key.ExpiresAt is { } e ? e.ToUniversalTime() : DBNull.Value);
        p.AddWithValue("enabled", key.Enabled);
        p.AddWithValue("revoked", NpgsqlDbType.TimestampTz, key.RevokedAt is { } r ? r.ToUniversalTime() : DBNull.Value);
        p.AddWithValue("models", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(key.AllowedModels, StorageJsonContext.Default.IReadOnlyListString));
        p.AddWithValue("ips", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(key.IpAllowlist, StorageJsonContext.Default.IReadOnlyListString));
        p.AddWithValue("rpm", NpgsqlDbType.Integer, Value(key.Rpm));
        p.AddWithValue("tpm", NpgsqlDbType.Integer, Value(key.Tpm));
        p.AddWithValue("parallel", NpgsqlDbType.Integer, Value(key.MaxParallel));
        p.AddWithValue("daily", NpgsqlDbType.Numeric, Value(key.DailyBudget));
        p.AddWithValue("monthly", NpgsqlDbType.Numeric, Value(key.MonthlyBudget));
        p.AddWithValue("total", NpgsqlDbType.Numeric, Value(key.TotalBudget));
        p.AddWithValue("credit", NpgsqlDbType.Numeric, Value(key.CreditBalance));
        p.AddWithValue("metadata", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(key.Metadata, StorageJsonContext.Default.IReadOnlyDictionaryStringString));
    }

    private static VirtualKeyRecord Read(NpgsqlDataReader r)
    {
        static DateTimeOffset? Time(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetFieldValue<DateTimeOffset>(i);
        static int? Int(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetInt32(i);
        static decimal? Dec(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetDecimal(i);
        return new VirtualKeyRecord
        {
            Id = r.GetString(0),
            Name = r.GetString(1),
            Team = r.IsDBNull(2) ? null : r.GetString(2),
            Hash = r.GetString(3),
            Display = r.GetString(4),
            CreatedAt = Time(r, 5)!.Value,
            ExpiresAt = Time(r, 6),
            Enabled = r.GetBoolean(7),
            RevokedAt = Time(r, 8),
            AllowedModels = JsonSerializer.Deserialize(r.GetString(9), StorageJsonContext.Default.IReadOnlyListString) ?? [],
            IpAllowlist = JsonSerializer.Deserialize(r.GetString(10), StorageJsonContext.Default.IReadOnlyListString) ?? [],
            Rpm = Int(r, 11),
            Tpm = Int(r, 12),
            MaxParallel = Int(r, 13),
            DailyBudget = Dec(r, 14),
            MonthlyBudget = Dec(r, 15),
            TotalBudget = Dec(r, 16),
            CreditBalance = Dec(r, 17),
            Metadata = JsonSerializer.Deserialize(r.GetString(18), StorageJsonContext.Default.IReadOnlyDictionaryStringString) ?? new Dictionary<string, string>(),
        };
    }
}
