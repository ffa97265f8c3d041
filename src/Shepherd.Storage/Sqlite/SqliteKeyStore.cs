namespace Shepherd.Storage.Sqlite;

using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Shepherd.Keys;

/// <summary>Virtual keys and their spend counters in the embedded database.</summary>
public sealed class SqliteKeyStore(SqliteDatabase database) : IKeyStore, ISpendStore
{
    private const string Columns =
        "id, name, team, key_hash, display, created_at, expires_at, enabled, revoked_at, allowed_models, ip_allowlist, rpm, tpm, max_parallel, daily_budget, monthly_budget, total_budget, credit_balance, metadata";

    public async Task<IReadOnlyList<VirtualKeyRecord>> LoadAllAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {Columns} FROM virtual_keys ORDER BY created_at, id";
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
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {Columns} FROM virtual_keys WHERE id = $id";
        command.Parameters.AddWithValue("$id", id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    public async Task InsertAsync(VirtualKeyRecord key, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = $"INSERT INTO virtual_keys ({Columns}) VALUES ($id, $name, $team, $hash, $display, $created, $expires, $enabled, $revoked, $models, $ips, $rpm, $tpm, $parallel, $daily, $monthly, $total, $credit, $metadata)";
        Bind(command, key);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task UpdateAsync(VirtualKeyRecord key, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();

        // The hash and creation time never change; the credit balance changes only through TopUpAsync/ApplyAsync.
        command.CommandText = """
            UPDATE virtual_keys SET name=$name, team=$team, expires_at=$expires, enabled=$enabled, revoked_at=$revoked,
              allowed_models=$models, ip_allowlist=$ips, rpm=$rpm, tpm=$tpm, max_parallel=$parallel,
              daily_budget=$daily, monthly_budget=$monthly, total_budget=$total, metadata=$metadata,
              credit_balance = CASE WHEN $credit IS NULL THEN NULL ELSE COALESCE(credit_balance, $credit) END
            WHERE id=$id
            """;
        Bind(command, key);
        if (await command.ExecuteNonQueryAsync(cancellationToken) == 0)
        {
            throw new KeyNotFoundException($"No key with id '{key.Id}'.");
        }
    }

    public async Task<decimal> TopUpAsync(string keyId, decimal amount, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        await using var select = connection.CreateCommand();
        select.Transaction = transaction;
        select.CommandText = "SELECT credit_balance FROM virtual_keys WHERE id=$id";
        select.Parameters.AddWithValue("$id", keyId);
        var current = await select.ExecuteScalarAsync(cancellationToken);
        if (current is null)
        {
            throw new KeyNotFoundException($"No key with id '{keyId}'.");
        }

        var balance = (current is DBNull ? 0m : Money(current)) + amount;
        await using var update = connection.CreateCommand();
        update.Transaction = transaction;
        update.CommandText = "UPDATE virtual_keys SET credit_balance=$b WHERE id=$id";
        update.Parameters.AddWithValue("$b", Text(balance));
        update.Parameters.AddWithValue("$id", keyId);
        await update.ExecuteNonQueryAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return balance;
    }

    public async Task<IReadOnlyList<KeySpend>> LoadAsync(DateOnly day, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT key_id, period, spend FROM key_spend WHERE period IN ($d, $m, 'total')";
        command.Parameters.AddWithValue("$d", DayPeriod(day));
        command.Parameters.AddWithValue("$m", MonthPeriod(day));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var byKey = new Dictionary<string, (decimal Day, decimal Month, decimal Total)>(StringComparer.Ordinal);
        while (await reader.ReadAsync(cancellationToken))
        {
            var key = reader.GetString(0);
            var period = reader.GetString(1);
            var spend = Money(reader.GetString(2));
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

        // Money is exact decimal text, so the additions happen here, not in SQL (SQLite would use doubles).
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        var totals = new Dictionary<(string Key, string Period), decimal>();
        var credits = new Dictionary<string, decimal>(StringComparer.Ordinal);
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

        await using var select = connection.CreateCommand();
        select.Transaction = transaction;
        select.CommandText = "SELECT spend FROM key_spend WHERE key_id=$k AND period=$p";
        var selectKey = select.Parameters.Add("$k", SqliteType.Text);
        var selectPeriod = select.Parameters.Add("$p", SqliteType.Text);
        await using var upsert = connection.CreateCommand();
        upsert.Transaction = transaction;
        upsert.CommandText = "INSERT INTO key_spend (key_id, period, spend) VALUES ($k, $p, $s) ON CONFLICT (key_id, period) DO UPDATE SET spend=excluded.spend";
        var upsertKey = upsert.Parameters.Add("$k", SqliteType.Text);
        var upsertPeriod = upsert.Parameters.Add("$p", SqliteType.Text);
        var upsertSpend = upsert.Parameters.Add("$s", SqliteType.Text);
        foreach (var ((key, period), amount) in totals)
        {
            selectKey.Value = key;
            selectPeriod.Value = period;
            var current = await select.ExecuteScalarAsync(cancellationToken);
            upsertKey.Value = key;
            upsertPeriod.Value = period;
            upsertSpend.Value = Text((current is string s ? Money(s) : 0m) + amount);
            await upsert.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var balance = connection.CreateCommand();
        balance.Transaction = transaction;
        balance.CommandText = "SELECT credit_balance FROM virtual_keys WHERE id=$k";
        var balanceKey = balance.Parameters.Add("$k", SqliteType.Text);
        await using var debit = connection.CreateCommand();
        debit.Transaction = transaction;
        debit.CommandText = "UPDATE virtual_keys SET credit_balance=$b WHERE id=$k AND credit_balance IS NOT NULL";
        var debitBalance = debit.Parameters.Add("$b", SqliteType.Text);
        var debitKey = debit.Parameters.Add("$k", SqliteType.Text);
        foreach (var (key, amount) in credits)
        {
            balanceKey.Value = key;
            if (await balance.ExecuteScalarAsync(cancellationToken) is string current)
            {
                debitBalance.Value = Text(Money(current) - amount);
                debitKey.Value = key;
                await debit.ExecuteNonQueryAsync(cancellationToken);
            }
        }

        await transaction.CommitAsync(cancellationToken);
    }

    private static void Add<TKey>(Dictionary<TKey, decimal> totals, TKey key, decimal amount)
        where TKey : notnull => totals[key] = totals.GetValueOrDefault(key) + amount;

    private static string DayPeriod(DateOnly day) => "d:" + day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private static string MonthPeriod(DateOnly day) => "m:" + day.ToString("yyyy-MM", CultureInfo.InvariantCulture);

    private static decimal Money(object value) => decimal.Parse(Convert.ToString(value, CultureInfo.InvariantCulture)!, NumberStyles.Number, CultureInfo.InvariantCulture);

    private static string Text(decimal value) => value.ToString(CultureInfo.InvariantCulture);

    private static object Nullable(decimal? value) => value is { } v ? Text(v) : DBNull.Value;

    private static object Nullable<T>(T? value)
        where T : struct => value is { } v ? v : DBNull.Value;

    private static void Bind(SqliteCommand command, VirtualKeyRecord key)
    {
        var p = command.Parameters;
        p.AddWithValue("$id", key.Id);
        p.AddWithValue("$name", key.Name);
        p.AddWithValue("$team", (object?)key.Team ?? DBNull.Value);
        p.AddWithValue("$hash", key.Hash);
        p.AddWithValue("$display", key.Display);
        p.AddWithValue("$created", key.CreatedAt.ToString("O", CultureInfo.InvariantCulture));
        p.AddWithValue("$expires", (object?)key.ExpiresAt?.ToString("O", CultureInfo.InvariantCulture) ?? DBNull.Value);
        p.AddWithValue("$enabled", key.Enabled ? 1 : 0);
        p.AddWithValue("$revoked", (object?)key.RevokedAt?.ToString("O", CultureInfo.InvariantCulture) ?? DBNull.Value);
        p.AddWithValue("$models", JsonSerializer.Serialize(key.AllowedModels, StorageJsonContext.Default.IReadOnlyListString));
        p.AddWithValue("$ips", JsonSerializer.Serialize(key.IpAllowlist, StorageJsonContext.Default.IReadOnlyListString));
        p.AddWithValue("$rpm", Nullable(key.Rpm));
        p.AddWithValue("$tpm", Nullable(key.Tpm));
        p.AddWithValue("$parallel", Nullable(key.MaxParallel));
        p.AddWithValue("$daily", Nullable(key.DailyBudget));
        p.AddWithValue("$monthly", Nullable(key.MonthlyBudget));
        p.AddWithValue("$total", Nullable(key.TotalBudget));
        p.AddWithValue("$credit", Nullable(key.CreditBalance));
        p.AddWithValue("$metadata", JsonSerializer.Serialize(key.Metadata, StorageJsonContext.Default.IReadOnlyDictionaryStringString));
    }

    private static VirtualKeyRecord Read(SqliteDataReader r)
    {
        static DateTimeOffset? Time(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : DateTimeOffset.Parse(r.GetString(i), CultureInfo.InvariantCulture);
        static int? Int(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetInt32(i);
        static decimal? Dec(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : Money(r.GetString(i));
        return new VirtualKeyRecord
        {
            Id = r.GetString(0),
            Name = r.GetString(1),
            Team = r.IsDBNull(2) ? null : r.GetString(2),
            Hash = r.GetString(3),
            Display = r.GetString(4),
            CreatedAt = Time(r, 5)!.Value,
            ExpiresAt = Time(r, 6),
            Enabled = r.GetInt32(7) != 0,
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

[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyList<string>))]
[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyDictionary<string, string>))]
internal sealed partial class StorageJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
