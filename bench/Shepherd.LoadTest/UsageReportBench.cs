namespace Shepherd.LoadTest;

using System.Diagnostics;
using System.Globalization;
using System.Text;
using Shepherd.Accounting;
using Shepherd.Storage.Sqlite;

/// <summary>
/// How fast reports stay on a large embedded usage store: seeds N records (default 10 million) over 30 days through
/// the SQLite usage store, as the recorder writes them (batches of 1,000), then times the reports users run.
/// </summary>
public static class UsageReportBench
{
    /// <param name="batchSize">Records per write: 1,000 is the recorder's batch under load; a small one (e.g. 20, a
    /// 200 ms batch at 100 req/s) makes many small blocks, the case for the time index.</param>
    public static async Task RunAsync(int records, int batchSize, StringBuilder report)
    {
        var directory = Directory.CreateTempSubdirectory("shepherd-bench-reports-").FullName;
        try
        {
            var database = new SqliteDatabase(Path.Combine(directory, "shepherd.db"));
            await database.MigrateAsync(CancellationToken.None);
            var store = new SqliteUsageStore(database);
            var start = new DateTimeOffset(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);
            var spacing = TimeSpan.FromDays(30).TotalMilliseconds / records;
            string[] models = ["gpt-4.1", "gpt-4.1-mini", "claude-sonnet-4.5", "gemini-2.5-flash", "deepseek-v3.2"];

            var seeding = Stopwatch.StartNew();
            var batch = new UsageRecord[batchSize];
            for (var written = 0; written < records; written += batch.Length)
            {
                var count = Math.Min(batch.Length, records - written);
                for (var j = 0; j < count; j++)
                {
                    var i = written + j;
                    var model = models[i % models.Length];
                    batch[j] = new UsageRecord
                    {
                        Time = start.AddMilliseconds(i * spacing),
                        RequestId = "req_" + i.ToString("x12", CultureInfo.InvariantCulture),
                        KeyId = "key_" + (i % 50).ToString(CultureInfo.InvariantCulture),
                        Team = "team-" + (i % 7).ToString(CultureInfo.InvariantCulture),
                        RequestedModel = model,
                        ServedModel = model,
                        Provider = model.Split('-')[0],
                        Deployment = model.Split('-')[0] + "/" + model,
                        Attempts = 1,
                        Status = i % 97 == 0 ? 429 : 200,
                        ErrorClass = i % 97 == 0 ? "rate_limit_exceeded" : null,
                        PromptTokens = 100 + (i % 900),
                        CachedTokens = i % 3 == 0 ? 64 : 0,
                        CompletionTokens = 20 + (i % 300),
                        Cost = 0.000001m * (1 + (i % 500)),
                        LatencyMs = 200 + (i % 5000),
                        TimeToFirstTokenMs = 50 + (i % 700),
                        OutputTokensPerSecond = 40 + (i % 60),
                    };
                }

                await store.WriteAsync(count == batch.Length ? batch : batch[..count], CancellationToken.None);
            }

            seeding.Stop();
            var size = new FileInfo(database.Path).Length + (File.Exists(database.Path + "-wal") ? new FileInfo(database.Path + "-wal").Length : 0);
            report.AppendLine("### Usage reports on a large embedded store");
            report.AppendLine();
            report.AppendLine(CultureInfo.InvariantCulture, $"{records:N0} records over 30 days (50 keys, 7 teams, 5 models), written in batches of {batchSize:N0} in {seeding.Elapsed.TotalSeconds:F1} s ({seeding.Elapsed.TotalMicroseconds / records:F2} µs per record); database {size / 1048576.0:F0} MiB.");
            report.AppendLine();
            report.AppendLine("| report | rows | first run ms | again ms |");
            report.AppendLine("|---|---:|---:|---:|");
            (string Name, UsageQuery Query)[] queries =
            [
                ("whole month by model", new UsageQuery(start, start.AddDays(30), UsageGrouping.Model)),
                ("whole month by day", new UsageQuery(start, start.AddDays(30), UsageGrouping.Day)),
                ("whole month by key", new UsageQuery(start, start.AddDays(30), UsageGrouping.Key)),
                ("7 days by hour", new UsageQuery(start.AddDays(10), start.AddDays(17), UsageGrouping.Hour)),
                ("one key, 7 days by hour", new UsageQuery(start.AddDays(10), start.AddDays(17), UsageGrouping.Hour) { KeyId = "key_7" }),
                ("12:34 on day 3 to 17:21 on day 20, by team", new UsageQuery(start.AddDays(2).AddHours(12).AddMinutes(34), start.AddDays(19).AddHours(17).AddMinutes(21), UsageGrouping.Team)),
                ("one key, 12:34 on day 3 to 17:21 on day 20, by model", new UsageQuery(start.AddDays(2).AddHours(12).AddMinutes(34), start.AddDays(19).AddHours(17).AddMinutes(21), UsageGrouping.Model) { KeyId = "key_7" }),
                ("the last 90 minutes, by key", new UsageQuery(start.AddDays(30).AddMinutes(-90), start.AddDays(30), UsageGrouping.Key)),
            ];
            foreach (var (name, query) in queries)
            {
                var first = Stopwatch.StartNew();
                var rows = await store.QueryAsync(query, CancellationToken.None);
                first.Stop();
                var again = Stopwatch.StartNew();
                await store.QueryAsync(query, CancellationToken.None);
                again.Stop();
                report.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {rows.Count} | {first.Elapsed.TotalMilliseconds:F1} | {again.Elapsed.TotalMilliseconds:F1} |");
                Console.Error.WriteLine($"{name}: {rows.Count} rows, {first.Elapsed.TotalMilliseconds:F1} / {again.Elapsed.TotalMilliseconds:F1} ms");
            }

            var purge = Stopwatch.StartNew();
            var purged = await store.PurgeAsync(start.AddDays(7).AddHours(3).AddMinutes(10), CancellationToken.None);
            purge.Stop();
            report.AppendLine();
            report.AppendLine(CultureInfo.InvariantCulture, $"Retention purge of the first 7 days and 3 hours: {purged:N0} records in {purge.Elapsed.TotalSeconds:F1} s.");
            report.AppendLine();
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }
}
