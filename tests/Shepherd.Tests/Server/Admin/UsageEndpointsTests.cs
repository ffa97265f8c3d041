namespace Shepherd.Tests.Server.Admin;

using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Shepherd.Accounting;
using Shepherd.Testing;
using Shepherd.Tests.Accounting;

/// <summary>
/// <c>GET /admin/usage</c> on a real gateway whose store holds a seeded data set with hand-computed totals, at a fixed
/// "now" (2026-11-22 12:00 UTC).
/// </summary>
public sealed class UsageEndpointsTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);

    private GatewayHost _gateway = null!;
    private string _keyA = null!;
    private string _keyB = null!;

    public async Task InitializeAsync()
    {
        _gateway = await GatewayHost.StartAsync(
            """
            providers:
              - { name: sim1, type: simulated, simulated: { completion_tokens: 10 } }
              - { name: sim2, type: simulated }
            models:
              - { name: gpt-big, aliases: [ big ], price: { input: 10, output: 30, cached_input: 2.5 }, deployments: [ { provider: sim2 } ] }
              - { name: gpt-small, price: { input: 0.5, output: 1.5 }, deployments: [ { provider: sim1 } ] }
              - { name: free, deployments: [ { provider: sim1 } ] }
            """,
            new FakeTimeProvider(Now));
        (_keyA, _) = await UsageRecords.CreateKeyAsync(_gateway, new { name = "alpha app", team = "alpha", daily_budget = 5, monthly_budget = 50 });
        (_keyB, _) = await UsageRecords.CreateKeyAsync(_gateway, new { name = "beta app", credit_balance = 10 });

        // Costs as the gateway computes them at the models' prices (see the table in UsageReportTests).
        await _gateway.Services.GetRequiredService<IUsageStore>().WriteAsync(
        [
            Record("r1", "2026-11-20T09:00:00Z", _keyA, "alpha", "gpt-small", "sim1", 1000, 400, 500, 0, 0.00125m),
            Record("r2", "2026-11-21T15:30:00Z", _keyA, "alpha", "gpt-big", "sim2", 2000, 1000, 100, 50, 0.0155m),
            Record("r3", "2026-11-21T16:10:00Z", _keyB, null, "gpt-small", "sim1", 0, 0, 0, 0, 0m) with { Status = 429, ErrorClass = "rate_limit_exceeded" },
            Record("r4", "2026-11-22T08:00:00Z", _keyB, null, "gpt-small", "sim1", 300, 0, 700, 0, 0.0012m) with { Estimated = true },
            Record("r5", "2026-10-31T23:59:00Z", "master", null, "gpt-big", "sim2", 100, 0, 100, 0, 0.004m),
        ],
            CancellationToken.None);
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private static UsageRecord Record(string id, string time, string key, string? team, string model, string provider, int prompt, int cached, int completion, int reasoning, decimal cost) => new()
    {
        Time = DateTimeOffset.Parse(time, System.Globalization.CultureInfo.InvariantCulture),
        RequestId = id,
        KeyId = key,
        Team = team,
        RequestedModel = model,
        ServedModel = model,
        Provider = provider,
        Deployment = provider + "/" + model,
        Attempts = 1,
        Status = 200,
        PromptTokens = prompt,
        CachedTokens = cached,
        CompletionTokens = completion,
        ReasoningTokens = reasoning,
        Cost = cost,
    };

    private async Task<JsonNode> ReportAsync(string query)
    {
        using var response = await _gateway.Client.GetAsync("/admin/usage" + query);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.StartsWith("application/json", response.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
        return JsonNode.Parse(body)!;
    }

    private static Dictionary<string, JsonNode> Rows(JsonNode report) =>
        report["rows"]!.AsArray().ToDictionary(r => r!["group"]!.GetValue<string>(), r => r!);

    private static (long Requests, decimal Cost) Figures(JsonNode row) => (row["requests"]!.GetValue<long>(), row["cost_usd"]!.GetValue<decimal>());

    [Fact]
    public async Task Report_Default_ThisMonthByModelWithTotalsAndRunRate()
    {
        var report = await ReportAsync("");

        Assert.Equal("usage_report", report["object"]!.GetValue<string>());
        Assert.Equal("2026-11-01T00:00:00Z", report["from"]!.GetValue<string>());
        Assert.Equal("2026-11-22T12:00:00Z", report["to"]!.GetValue<string>());
        Assert.Equal("model", report["group_by"]!.GetValue<string>());
        var rows = Rows(report);
        Assert.Equal(["gpt-big", "gpt-small"], rows.Keys);
        var small = rows["gpt-small"];
        Assert.Equal((3L, 0.00245m), Figures(small));
        Assert.Equal((1L, 1300L, 400L, 1200L, 0L, 1L), (small["errors"]!.GetValue<long>(), small["prompt_tokens"]!.GetValue<long>(), small["cached_tokens"]!.GetValue<long>(), small["completion_tokens"]!.GetValue<long>(), small["reasoning_tokens"]!.GetValue<long>(), small["estimated"]!.GetValue<long>()));
        Assert.Equal(50L, rows["gpt-big"]["reasoning_tokens"]!.GetValue<long>());

        var totals = report["totals"]!;
        Assert.Equal((4L, 0.01795m), Figures(totals));
        Assert.Equal((3300L, 1400L, 1300L, 50L), (totals["prompt_tokens"]!.GetValue<long>(), totals["cached_tokens"]!.GetValue<long>(), totals["completion_tokens"]!.GetValue<long>(), totals["reasoning_tokens"]!.GetValue<long>()));
        Assert.Null(totals["baseline_cost_usd"]);

        // 0.01795 × 30 ÷ 21.5 days.
        var run = report["run_rate"]!;
        Assert.Equal(0.01795m, run["month_to_date_usd"]!.GetValue<decimal>());
        Assert.Equal(0.025046512m, run["projected_month_usd"]!.GetValue<decimal>());
        Assert.Equal(21.5m, run["days_elapsed"]!.GetValue<decimal>());
        Assert.Equal(30, run["days_in_month"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("key", "alpha|2|0.01675;beta|2|0.0012")]
    [InlineData("team", "|2|0.0012;alpha|2|0.01675")]
    [InlineData("provider", "sim1|3|0.00245;sim2|1|0.0155")]
    [InlineData("day", "2026-11-20|1|0.00125;2026-11-21|2|0.0155;2026-11-22|1|0.0012")]
    [InlineData("hour", "2026-11-20T09:00:00Z|1|0.00125;2026-11-21T15:00:00Z|1|0.0155;2026-11-21T16:00:00Z|1|0;2026-11-22T08:00:00Z|1|0.0012")]
    public async Task Report_EveryGrouping_ExactSums(string groupBy, string expected)
    {
        var report = await ReportAsync("?group_by=" + groupBy);

        var rows = report["rows"]!.AsArray().Select(r =>
        {
            var group = r!["group"]!.GetValue<string>();
            group = group == _keyA ? "alpha" : group == _keyB ? "beta" : group;
            return $"{group}|{r["requests"]}|{r["cost_usd"]}";
        });
        Assert.Equal(expected.Split(';').Order(StringComparer.Ordinal), rows.Order(StringComparer.Ordinal));
        Assert.Equal((4L, 0.01795m), Figures(report["totals"]!));
    }

    [Fact]
    public async Task Report_ByKey_CarriesEachKeysLiveFigures()
    {
        // One real request with key A (the simulated model answers 10 completion tokens), at "now".
        var created = await UsageRecords.CreateKeyAsync(_gateway, new { name = "live", team = "gamma", daily_budget = 1 });
        using (var client = _gateway.CreateClient(created.Secret))
        {
            using var content = new StringContent("""{"model":"gpt-small","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json");
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", content)).StatusCode);
        }

        var deadline = DateTime.UtcNow.AddSeconds(10);
        JsonNode live;
        do
        {
            await UsageRecords.Recorder(_gateway).FlushAsync(CancellationToken.None);
            // The fake clock stands still: the request was recorded at "now", which a range ending now excludes.
            live = Rows(await ReportAsync("?group_by=key&to=2026-11-22")).GetValueOrDefault(created.Id) ?? new JsonObject();
        }
        while (live["requests"] is null && DateTime.UtcNow < deadline);

        Assert.Equal("live", live["name"]!.GetValue<string>());
        Assert.Equal("gamma", live["team"]!.GetValue<string>());
        Assert.Equal(1m, live["daily_budget"]!.GetValue<decimal>());
        Assert.Null(live["monthly_budget"]);
        Assert.Null(live["credit_balance"]);
        var cost = live["cost_usd"]!.GetValue<decimal>();
        Assert.True(cost > 0m);
        Assert.Equal(cost, live["spend_today_usd"]!.GetValue<decimal>());
        Assert.Equal(cost, live["spend_month_usd"]!.GetValue<decimal>());

        var rows = Rows(await ReportAsync("?group_by=key&format=json"));
        Assert.Equal("alpha app", rows[_keyA]["name"]!.GetValue<string>());
        Assert.Equal((5m, 50m), (rows[_keyA]["daily_budget"]!.GetValue<decimal>(), rows[_keyA]["monthly_budget"]!.GetValue<decimal>()));
        Assert.Equal(10m, rows[_keyB]["credit_balance"]!.GetValue<decimal>());
        Assert.Null(rows[_keyB]["team"]);
        Assert.Equal(0m, rows[_keyB]["spend_today_usd"]!.GetValue<decimal>());
    }

    [Fact]
    public async Task Report_Baseline_SavingsPerRowAndInTotal()
    {
        var report = await ReportAsync("?baseline=big");

        Assert.Equal("gpt-big", report["baseline"]!.GetValue<string>());
        var rows = Rows(report);
        Assert.Equal((0.0155m, 0m, 0m), Savings(rows["gpt-big"]));
        Assert.Equal((0.046m, 0.04355m, 94.67m), Savings(rows["gpt-small"]));
        Assert.Equal((0.0615m, 0.04355m, 70.81m), Savings(report["totals"]!));

        // A baseline without a price saves nothing to speak of: refused rather than shown as 100% savings.
        var free = await _gateway.Client.GetAsync("/admin/usage?baseline=free");
        Assert.Equal(HttpStatusCode.BadRequest, free.StatusCode);

        static (decimal, decimal, decimal) Savings(JsonNode row) =>
            (row["baseline_cost_usd"]!.GetValue<decimal>(), row["savings_usd"]!.GetValue<decimal>(), row["savings_pct"]!.GetValue<decimal>());
    }

    [Theory]
    [InlineData("?since=36h", 3, "0.0167")]
    [InlineData("?from=2026-11-21T16:00:00Z", 2, "0.0012")]
    [InlineData("?to=2026-11-21", 3, "0.01675")]
    [InlineData("?since=2026-10-01&until=2026-10-31", 1, "0.004")]
    [InlineData("?from=2026-10-01&key=master", 1, "0.004")]
    public async Task Report_Ranges_CountExactlyTheRecordsInside(string query, long requests, string cost)
    {
        var report = await ReportAsync(query);

        Assert.Equal((requests, decimal.Parse(cost, System.Globalization.CultureInfo.InvariantCulture)), Figures(report["totals"]!));
    }

    [Fact]
    public async Task Report_KeyFilter_OnlyThatKeyAndItsRunRate()
    {
        var report = await ReportAsync($"?key={_keyB}&group_by=day");

        Assert.Equal(_keyB, report["key"]!.GetValue<string>());
        Assert.Equal((2L, 0.0012m), Figures(report["totals"]!));
        Assert.Equal(0.0012m, report["run_rate"]!["month_to_date_usd"]!.GetValue<decimal>());
    }

    [Theory]
    [InlineData("?format=csv", null)]
    [InlineData("", "text/csv")]
    public async Task Report_Csv_ParsesAndMatchesTheJson(string query, string? accept)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/usage" + query + (query.Length == 0 ? "?" : "&") + "group_by=key&baseline=gpt-big");
        if (accept is not null)
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(accept));
        }

        using var response = await _gateway.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/csv", response.Content.Headers.ContentType!.MediaType);
        var lines = Csv.Parse(await response.Content.ReadAsStringAsync());
        var json = await ReportAsync("?group_by=key&baseline=gpt-big");

        var header = lines[0];
        Assert.Equal(["group", "requests", "errors", "prompt_tokens", "cached_tokens", "cache_write_tokens", "completion_tokens", "reasoning_tokens", "cost_usd", "estimated", "baseline_cost_usd", "savings_usd", "savings_pct", "name", "team", "spend_today_usd", "spend_month_usd", "daily_budget", "monthly_budget", "credit_balance"], header);
        Assert.All(lines, l => Assert.Equal(header.Count, l.Count));
        var rows = json["rows"]!.AsArray();
        Assert.Equal(rows.Count + 2, lines.Count);
        for (var i = 0; i < rows.Count; i++)
        {
            foreach (var (field, index) in header.Select((f, i) => (f, i)))
            {
                var expected = rows[i]![field] switch
                {
                    null => string.Empty,
                    JsonValue v when v.TryGetValue<string>(out var s) => s,
                    var v => v.ToJsonString(),
                };
                Assert.Equal(expected, lines[i + 1][index]);
            }
        }

        var totals = lines[^1];
        Assert.Equal("TOTAL", totals[0]);
        Assert.Equal(("4", "0.01795", "0.0615", "0.04355", "70.81"), (totals[1], totals[8], totals[10], totals[11], totals[12]));
        Assert.Contains(lines, l => l[13] == "alpha app" && l[14] == "alpha" && l[8] == "0.01675");
    }

    [Fact]
    public async Task Report_CsvFieldsWithCommasAndQuotes_QuotedPerRfc4180()
    {
        await _gateway.Services.GetRequiredService<IUsageStore>().WriteAsync(
            [Record("r6", "2026-11-22T09:00:00Z", "key_x", "team \"q\", with comma\r\nand a line", "gpt-small", "sim1", 1, 0, 1, 0, 0.000002m)],
            CancellationToken.None);

        var text = await _gateway.Client.GetStringAsync("/admin/usage?group_by=team&format=csv");

        Assert.Contains("\"team \"\"q\"\", with comma\r\nand a line\",1,", text, StringComparison.Ordinal);
        var lines = Csv.Parse(text);
        Assert.Contains(lines, l => l[0] == "team \"q\", with comma\r\nand a line" && l[8] == "0.000002");
        Assert.EndsWith("\r\n", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("?group_by=week", "group_by")]
    [InlineData("?group-by=key", "group-by")]
    [InlineData("?from=yesterday", "from")]
    [InlineData("?since=7x", "since")]
    [InlineData("?to=2026-02-30", "to")]
    [InlineData("?from=2026-11-10&to=2026-11-09T00:00:00Z", "from")]
    [InlineData("?from=2026-11-01&since=7d", "since")]
    [InlineData("?baseline=no-such-model", "baseline")]
    [InlineData("?format=xml", "format")]
    [InlineData("?group_by=key&group_by=team", "group_by")]
    public async Task Report_BadParameter_400NamingIt(string query, string param)
    {
        using var response = await _gateway.Client.GetAsync("/admin/usage" + query);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal(param, error["param"]!.GetValue<string>());
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task Report_WithoutTheMasterKey_401()
    {
        var (_, secret) = await UsageRecords.CreateKeyAsync(_gateway, new { name = "not admin" });
        using var client = _gateway.CreateClient(secret);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/admin/usage")).StatusCode);
        using var anonymous = _gateway.CreateClient(null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/admin/usage")).StatusCode);
    }

    [Fact]
    public async Task OpenApi_DocumentsTheUsageReport()
    {
        var document = JsonNode.Parse(await _gateway.Client.GetStringAsync("/admin/openapi.json"))!;
        var get = document["paths"]!["/admin/usage"]!["get"]!;
        var parameters = get["parameters"]!.AsArray().Select(p => p!["name"]!.GetValue<string>()).ToArray();
        Assert.Equal(["group_by", "from", "since", "to", "until", "key", "format", "baseline"], parameters);
        Assert.NotNull(get["responses"]!["200"]!["content"]!["text/csv"]);
        Assert.NotNull(document["components"]!["schemas"]!["UsageReport"]);
    }
}

/// <summary>A small RFC 4180 reader: quoted fields may hold commas, doubled quotes and line breaks; records end with CRLF.</summary>
internal static class Csv
{
    public static List<List<string>> Parse(string text)
    {
        var records = new List<List<string>>();
        var record = new List<string>();
        var field = new StringBuilder();
        var i = 0;
        var quoted = false;
        while (i < text.Length)
        {
            var c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"')
                {
                    field.Append('"');
                    i += 2;
                }
                else if (c == '"')
                {
                    quoted = false;
                    i++;
                }
                else
                {
                    field.Append(c);
                    i++;
                }
            }
            else if (c == '"')
            {
                Assert.True(field.Length == 0, "a quote inside an unquoted field");
                quoted = true;
                i++;
            }
            else if (c == ',')
            {
                record.Add(field.ToString());
                field.Clear();
                i++;
            }
            else if (c == '\r' && i + 1 < text.Length && text[i + 1] == '\n')
            {
                record.Add(field.ToString());
                field.Clear();
                records.Add(record);
                record = [];
                i += 2;
            }
            else
            {
                Assert.NotEqual('\n', c);
                field.Append(c);
                i++;
            }
        }

        Assert.False(quoted, "an unterminated quoted field");
        Assert.True(field.Length == 0 && record.Count == 0, "the last record has no CRLF");
        return records;
    }
}
