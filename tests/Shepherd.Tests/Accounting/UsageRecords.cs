namespace Shepherd.Tests.Accounting;

using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Shepherd.Accounting;
using Shepherd.Testing;

/// <summary>A usage record as stored (cost in USD, from the integer nano-dollars).</summary>
internal sealed record StoredUsage(
    string RecordId,
    string RequestId,
    string KeyId,
    string? Team,
    string? RequestedModel,
    string? ServedModel,
    string? Provider,
    string? Deployment,
    int Attempts,
    bool Fallback,
    bool Streamed,
    int Status,
    string? ErrorClass,
    int PromptTokens,
    int CachedTokens,
    int CompletionTokens,
    int ReasoningTokens,
    int CacheWriteTokens,
    decimal Cost,
    bool Estimated);

/// <summary>Reads the usage records of a gateway's database, after flushing its recorder.</summary>
internal static class UsageRecords
{
    public static UsageRecorder Recorder(GatewayHost gateway) => gateway.Services.GetRequiredService<UsageRecorder>();

    public static async Task<IReadOnlyList<StoredUsage>> ReadAsync(string databasePath)
    {
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = databasePath, Pooling = false }.ToString());
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT record_id, request_id, key_id, team, requested_model, served_model, provider, deployment, attempts, fallback,
              streamed, status, error_class, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, cache_write_tokens,
              cost_nanos, estimated
            FROM usage_records ORDER BY id
            """;
        var records = new List<StoredUsage>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            string? Text(int i) => reader.IsDBNull(i) ? null : reader.GetString(i);
            records.Add(new StoredUsage(
                reader.GetString(0), reader.GetString(1), reader.GetString(2), Text(3), Text(4), Text(5), Text(6), Text(7),
                reader.GetInt32(8), reader.GetInt32(9) == 1, reader.GetInt32(10) == 1, reader.GetInt32(11), Text(12),
                reader.GetInt32(13), reader.GetInt32(14), reader.GetInt32(15), reader.GetInt32(16), reader.GetInt32(17),
                reader.GetInt64(18) / 1_000_000_000m, reader.GetInt32(19) == 1));
        }

        return records;
    }

    /// <summary>
    /// Flushes the recorder until the database holds <paramref name="count"/> records (a request's record is written
    /// when its middleware finishes, which may be just after the client has its answer); fails after 15 s.
    /// </summary>
    public static async Task<IReadOnlyList<StoredUsage>> WaitForAsync(GatewayHost gateway, int count)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            await Recorder(gateway).FlushAsync(CancellationToken.None);
            var records = await ReadAsync(gateway.DatabasePath!);
            if (records.Count >= count || DateTime.UtcNow > deadline)
            {
                Assert.Equal(count, records.Count);
                return records;
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Creates a virtual key through the admin API.</summary>
    public static async Task<(string Id, string Secret)> CreateKeyAsync(GatewayHost gateway, object settings)
    {
        var response = await gateway.Client.PostAsJsonAsync("/admin/keys", settings);
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        var key = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        return (key["id"]!.GetValue<string>(), key["key"]!.GetValue<string>());
    }

    /// <summary>The key's live total spend (admin <c>/usage</c>).</summary>
    public static async Task<decimal> SpendAsync(GatewayHost gateway, string keyId)
    {
        var usage = JsonNode.Parse(await gateway.Client.GetStringAsync($"/admin/keys/{keyId}/usage"))!;
        return usage["spend"]!["total"]!.GetValue<decimal>();
    }
}
