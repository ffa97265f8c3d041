namespace Shepherd.Storage;

using System.Data.Common;
using Shepherd.Accounting;

/// <summary>What the usage stores share whatever the database: money as integer nano-dollars, and report rows.</summary>
internal static class UsageRows
{
    public const decimal NanosPerDollar = 1_000_000_000m;

    /// <summary>A cost in nano-dollars (halves away from zero), as usage records and rollups store it.</summary>
    public static long ToNanos(decimal cost) => (long)decimal.Round(cost * NanosPerDollar, 0, MidpointRounding.AwayFromZero);

    /// <summary>
    /// Reads a report query's rows — group, model, requests, errors, prompt, cached, completion, reasoning and
    /// cache-write tokens, cost in nano-dollars, estimated — ordered by group, into one row per group with its
    /// per-model token counts.
    /// </summary>
    public static async Task<IReadOnlyList<UsageRow>> ReadRowsAsync(DbDataReader reader, CancellationToken cancellationToken)
    {
        var rows = new List<UsageRow>();
        UsageRow? current = null;
        Dictionary<string, (long, long, long)>? byModel = null;
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var g = reader.IsDBNull(0) ? string.Empty : reader.GetString(0);
            var model = reader.IsDBNull(1) ? string.Empty : reader.GetString(1);
            var prompt = reader.GetInt64(4);
            var cached = reader.GetInt64(5);
            var completion = reader.GetInt64(6);
            if (current is null || current.Group != g)
            {
                if (current is not null)
                {
                    rows.Add(current with { ByModel = byModel! });
                }

                byModel = new Dictionary<string, (long, long, long)>(StringComparer.Ordinal);
                current = new UsageRow(g, 0, 0, 0, 0, 0, 0, 0, 0m, 0);
            }

            byModel![model] = (prompt, cached, completion);
            current = current with
            {
                Requests = current.Requests + reader.GetInt64(2),
                Errors = current.Errors + reader.GetInt64(3),
                PromptTokens = current.PromptTokens + prompt,
                CachedTokens = current.CachedTokens + cached,
                CompletionTokens = current.CompletionTokens + completion,
                ReasoningTokens = current.ReasoningTokens + reader.GetInt64(7),
                CacheWriteTokens = current.CacheWriteTokens + reader.GetInt64(8),
                Cost = current.Cost + (reader.GetInt64(9) / NanosPerDollar),
                Estimated = current.Estimated + reader.GetInt64(10),
            };
        }

        if (current is not null)
        {
            rows.Add(current with { ByModel = byModel! });
        }

        return rows;
    }
}
