namespace Shepherd.Tests.Telemetry;

using System.Globalization;
using System.Net;
using System.Text;
using Shepherd.Testing;

/// <summary><c>GET /metrics</c> of a real gateway after a known workload, parsed and checked to the unit.</summary>
public sealed class MetricsEndToEndTests : IAsyncLifetime
{
    // Prices per 1M tokens chosen so that one request (11 in, 7 out) costs exactly 0.025 USD.
    private const int PromptTokens = 11;
    private const int CompletionTokens = 7;
    private const double CostPerRequest = 0.025;

    private FakeOpenAI _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeOpenAI.StartAsync();
        _upstream.PromptTokens = PromptTokens;
        _upstream.CompletionTokens = CompletionTokens;
        _gateway = await GatewayHost.StartAsync($$"""
            routing: { max_attempts: 1, breaker: { consecutive_failures: 1, cooldown_s: 600 } }
            providers:
              - name: fake
                type: openai
                base_url: {{_upstream.BaseUrl}}
                api_keys: [ sk-upstream-secret-1 ]
              - { name: sim, type: simulated }
            models:
              - name: metered
                aliases: [ metered-alias ]
                price: { input: 1000, output: 2000 }
                deployments:
                  - { provider: fake, model: upstream-model, max_concurrency: 4, queue_size: 4 }
              - name: idle
                deployments: [ { provider: sim } ]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private Task<HttpResponseMessage> ChatAsync(string model, bool stream = false) =>
        _gateway.Client.PostAsync("/v1/chat/completions", Json(
            $$"""{"model":"{{model}}","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}"""));

    /// <summary>Scrapes until the gateway has finished recording <paramref name="requests"/> requests (a response can reach the client a moment before its request is recorded).</summary>
    private Task<PrometheusText> ScrapeAfterAsync(int requests) => ScrapeAfterAsync(_gateway, requests);

    private static async Task<PrometheusText> ScrapeAfterAsync(GatewayHost gateway, int requests)
    {
        using var client = gateway.CreateClient(key: null);
        for (var i = 0; ; i++)
        {
            using var response = await client.GetAsync("/metrics");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var scrape = PrometheusText.Parse(await response.Content.ReadAsStringAsync());
            if (scrape.Sum("shepherd_requests_total") >= requests && scrape.Sum("shepherd_requests_in_flight") == 0)
            {
                return scrape;
            }

            Assert.True(i < 600, $"/metrics did not show {requests} finished requests within 30 s");

            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Scrape_AfterKnownWorkload_CountersAndHistogramsMatchExactly()
    {
        for (var i = 0; i < 7; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await ChatAsync(i % 2 == 0 ? "metered" : "METERED-ALIAS")).StatusCode);
        }

        for (var i = 0; i < 3; i++)
        {
            var streamed = await ChatAsync("metered", stream: true);
            Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
            Assert.Contains("[DONE]", await streamed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.NotFound, (await ChatAsync("no-such-model")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await ChatAsync("another-unknown-" + Guid.NewGuid())).StatusCode);
        _upstream.Faults.Then(Fault.WithStatus(500));
        Assert.Equal(HttpStatusCode.BadGateway, (await ChatAsync("metered")).StatusCode);

        var scrape = await ScrapeAfterAsync(13);
        var text = scrape.Text;

        // Requests by status: 10 served, 2 refused (the client's model names never become labels), 1 upstream failure.
        Assert.Equal(13, scrape.Sum("shepherd_requests_total"));
        Assert.Equal(10, scrape.Sum("shepherd_requests_total", ("http_response_status_code", "200"), ("gen_ai_request_model", "metered"), ("gen_ai_response_model", "metered"), ("gen_ai_provider_name", "fake")));
        Assert.Equal(2, scrape.Sum("shepherd_requests_total", ("http_response_status_code", "404"), ("gen_ai_request_model", "unknown"), ("error_type", "model_not_found")));
        Assert.Equal(1, scrape.Sum("shepherd_requests_total", ("http_response_status_code", "502"), ("gen_ai_request_model", "metered")));
        Assert.DoesNotContain("no-such-model", text, StringComparison.Ordinal);
        Assert.DoesNotContain("another-unknown", text, StringComparison.Ordinal);
        Assert.DoesNotContain("metered-alias", text, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0, scrape.Sum("shepherd_requests_in_flight"));

        // Tokens: one input and one output observation per request that used any.
        Assert.Equal("histogram", scrape.Types["gen_ai_client_token_usage"]);
        Assert.Equal(10 * PromptTokens, scrape.Sum("gen_ai_client_token_usage_sum", ("gen_ai_token_type", "input")));
        Assert.Equal(10 * CompletionTokens, scrape.Sum("gen_ai_client_token_usage_sum", ("gen_ai_token_type", "output")));
        Assert.Equal(10, scrape.Sum("gen_ai_client_token_usage_count", ("gen_ai_token_type", "input"), ("gen_ai_operation_name", "chat")));
        Assert.Equal(10, scrape.Sum("gen_ai_client_token_usage_bucket", ("gen_ai_token_type", "output"), ("le", "+Inf")));
        Assert.Equal(0, scrape.Sum("gen_ai_client_token_usage_bucket", ("gen_ai_token_type", "output"), ("le", "4")));
        Assert.Equal(10, scrape.Sum("gen_ai_client_token_usage_bucket", ("gen_ai_token_type", "output"), ("le", "16")));

        // Cost, in USD, by served model.
        Assert.Equal("counter", scrape.Types["shepherd_cost_usd_total"]);
        Assert.Equal(10 * CostPerRequest, scrape.Sum("shepherd_cost_usd_total", ("gen_ai_response_model", "metered"), ("gen_ai_provider_name", "fake")), 9);

        // Durations: every request once; time to first token: the streams.
        Assert.Equal(13, scrape.Sum("gen_ai_server_request_duration_seconds_count"));
        Assert.Equal(13, scrape.Sum("gen_ai_server_request_duration_seconds_bucket", ("le", "+Inf")));
        var buckets = scrape.Series("gen_ai_server_request_duration_seconds_bucket", ("error_type", "model_not_found")).ToList();
        Assert.Equal(
            Shepherd.Telemetry.ShepherdMetrics.DurationBoundaries.Select(b => b.ToString(CultureInfo.InvariantCulture)).Append("+Inf"),
            buckets.Select(b => b.Label("le")!));
        Assert.Equal(2, buckets[^1].Value);
        Assert.True(buckets.Zip(buckets.Skip(1)).All(pair => pair.First.Value <= pair.Second.Value), "buckets are cumulative");
        Assert.Equal(3, scrape.Sum("gen_ai_server_time_to_first_token_seconds_count"));
        Assert.True(scrape.Sum("gen_ai_server_request_duration_seconds_sum") > 0);

        // Attempts: ten that succeeded, one transient failure; queue waits for each (max_concurrency is set).
        Assert.Equal(10, scrape.Sum("shepherd_upstream_attempts_total", ("shepherd_deployment", "fake/upstream-model"), ("shepherd_outcome", "success")));
        Assert.Equal(1, scrape.Sum("shepherd_upstream_attempts_total", ("shepherd_deployment", "fake/upstream-model"), ("shepherd_outcome", "transient")));
        Assert.Equal(0, scrape.Sum("shepherd_retries_total"));
        Assert.Equal(11, scrape.Sum("shepherd_queue_wait_seconds_count", ("shepherd_deployment", "fake/upstream-model"), ("shepherd_outcome", "admitted")));

        // The failure opened the deployment's breaker (consecutive_failures: 1); the key and the idle deployment stay closed.
        Assert.Equal(2, scrape.Sum("shepherd_breaker_state", ("shepherd_breaker_kind", "deployment"), ("shepherd_deployment", "fake/upstream-model")));
        Assert.Equal(0, scrape.Sum("shepherd_breaker_state", ("shepherd_breaker_kind", "deployment"), ("shepherd_deployment", "sim/idle")));
        Assert.Single(scrape.Series("shepherd_breaker_state", ("shepherd_breaker_kind", "key"), ("shepherd_upstream_key_id", "fake#0")));
        Assert.Equal(0, scrape.Sum("shepherd_breaker_state", ("shepherd_upstream_key_id", "fake#0")));

        // The usage sink: nothing spilled or dropped.
        Assert.Equal(0, scrape.Sum("shepherd_usage_sink_spilled_total"));
        Assert.Equal(0, scrape.Sum("shepherd_usage_sink_dropped_total"));
        Assert.Single(scrape.Series("shepherd_usage_sink_queue"));
        Assert.DoesNotContain("sk-upstream-secret-1", text, StringComparison.Ordinal);
        Assert.DoesNotContain(GatewayHost.TestMasterKey, text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Scrape_TwoGatewaysInOneProcess_EachCountsOnlyItsOwnRequests()
    {
        await using var other = await GatewayHost.StartAsync("""
            providers: [ { name: sim, type: simulated } ]
            models: [ { name: metered, deployments: [ { provider: sim } ] } ]
            """);
        for (var i = 0; i < 2; i++)
        {
            using var response = await other.Client.PostAsync("/v1/chat/completions", Json("""{"model":"metered","messages":[{"role":"user","content":"hi"}]}"""));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await ChatAsync("metered")).StatusCode);

        var mine = await ScrapeAfterAsync(1);
        Assert.Equal(1, mine.Sum("shepherd_requests_total"));
        Assert.Empty(mine.Series("shepherd_breaker_state", ("shepherd_deployment", "sim/metered")));

        using var client = other.CreateClient(key: null);
        var theirs = PrometheusText.Parse(await client.GetStringAsync("/metrics"));
        Assert.Empty(theirs.Series("shepherd_breaker_state", ("shepherd_deployment", "fake/upstream-model")));
        Assert.Empty(theirs.Series("shepherd_requests_total", ("gen_ai_provider_name", "fake")));
    }

    [Fact]
    public async Task Scrape_RetriesAndFallbacks_CountedPerDeploymentWithTheirCause()
    {
        await using var broken = await FakeOpenAI.StartAsync();
        broken.Faults.Always(Fault.WithStatus(500));
        await using var gateway = await ResilientGatewayAsync(broken, _upstream);

        using (var retried = await gateway.Client.PostAsync("/v1/chat/completions", Json("""{"model":"retried","messages":[{"role":"user","content":"hi"}]}""")))
        {
            Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
            Assert.Equal("2", retried.Headers.GetValues("x-shepherd-attempts").Single());
        }

        using (var fellBack = await gateway.Client.PostAsync("/v1/chat/completions", Json("""{"model":"primary","messages":[{"role":"user","content":"hi"}]}""")))
        {
            Assert.Equal(HttpStatusCode.OK, fellBack.StatusCode);
            Assert.Equal("secondary", fellBack.Headers.GetValues("x-shepherd-model").Single());
        }

        var scrape = await ScrapeAfterAsync(gateway, 2);

        Assert.Equal(1, scrape.Sum("shepherd_upstream_attempts_total", ("shepherd_deployment", "broken/a"), ("shepherd_outcome", "transient")));
        Assert.Equal(1, scrape.Sum("shepherd_upstream_attempts_total", ("shepherd_deployment", "healthy/b"), ("shepherd_outcome", "success")));
        Assert.Equal(1, scrape.Sum("shepherd_upstream_attempts_total", ("shepherd_deployment", "broken/c"), ("shepherd_outcome", "transient")));
        Assert.Equal(1, scrape.Sum("shepherd_upstream_attempts_total", ("shepherd_deployment", "healthy/d"), ("shepherd_outcome", "success")));
        Assert.Equal(4, scrape.Sum("shepherd_upstream_attempts_total"));

        // Each second attempt is a retry, caused by the transient failure before it.
        Assert.Equal(2, scrape.Sum("shepherd_retries_total"));
        Assert.Equal(1, scrape.Sum("shepherd_retries_total", ("shepherd_deployment", "healthy/b"), ("shepherd_failure_class", "transient")));
        Assert.Equal(1, scrape.Sum("shepherd_retries_total", ("shepherd_deployment", "healthy/d"), ("shepherd_failure_class", "transient")));

        Assert.Equal(1, scrape.Sum("shepherd_fallbacks_total"));
        Assert.Equal(1, scrape.Sum("shepherd_fallbacks_total", ("shepherd_fallback_from", "primary"), ("shepherd_fallback_to", "secondary")));

        // The request is counted under the model asked for, served by the fallback.
        Assert.Equal(1, scrape.Sum("shepherd_requests_total", ("gen_ai_request_model", "primary"), ("gen_ai_response_model", "secondary"), ("http_response_status_code", "200")));

        // One failure opens a breaker here: both broken deployments are open (2), the healthy ones closed (0).
        Assert.Equal(2, scrape.Sum("shepherd_breaker_state", ("shepherd_breaker_kind", "deployment"), ("shepherd_deployment", "broken/a")));
        Assert.Equal(2, scrape.Sum("shepherd_breaker_state", ("shepherd_breaker_kind", "deployment"), ("shepherd_deployment", "broken/c")));
        Assert.Equal(0, scrape.Sum("shepherd_breaker_state", ("shepherd_breaker_kind", "deployment"), ("shepherd_deployment", "healthy/b")));
        Assert.Equal(0, scrape.Sum("shepherd_breaker_state", ("shepherd_breaker_kind", "deployment"), ("shepherd_deployment", "healthy/d")));
        Assert.Equal(2, scrape.Series("shepherd_breaker_state", ("shepherd_breaker_kind", "key")).Count());
    }

    [Fact]
    public async Task Scrape_WhileARequestWaitsForItsUpstream_InFlightIsOne()
    {
        // The upstream holds the request until the scrape is done: no race with a fixed delay.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _upstream.Faults.Then(new Fault { HoldUntil = release.Task });
        var pending = ChatAsync("metered");
        while (_upstream.Server.StartedCount == 0 && !pending.IsCompleted)
        {
            await Task.Delay(10);
        }

        using var client = _gateway.CreateClient(key: null);
        var during = PrometheusText.Parse(await client.GetStringAsync("/metrics"));
        release.SetResult();
        Assert.Equal(1, during.Sum("shepherd_requests_in_flight"));
        Assert.Equal(0, during.Sum("shepherd_requests_total"));

        Assert.Equal(HttpStatusCode.OK, (await pending).StatusCode);
        var after = await ScrapeAfterAsync(1);
        Assert.Equal(0, after.Sum("shepherd_requests_in_flight"));
    }

    [Fact]
    public async Task Scrape_PathConfiguredOrMetricsOff_ServedOnlyWhereConfigured()
    {
        const string Models = """
            providers: [ { name: sim, type: simulated } ]
            models: [ { name: m, deployments: [ { provider: sim } ] } ]
            """;
        await using (var moved = await GatewayHost.StartAsync(Models + "\ntelemetry: { metrics_path: /internal/metrics }"))
        {
            using var client = moved.CreateClient(key: null);
            using var scrape = await client.GetAsync("/internal/metrics");
            Assert.Equal(HttpStatusCode.OK, scrape.StatusCode);
            Assert.StartsWith("text/plain", scrape.Content.Headers.ContentType!.MediaType, StringComparison.Ordinal);
            Assert.Contains("shepherd_breaker_state", await scrape.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/metrics")).StatusCode);
        }

        await using var off = await GatewayHost.StartAsync(Models + "\ntelemetry: { metrics: false }");
        using var offClient = off.CreateClient(key: null);
        Assert.Equal(HttpStatusCode.NotFound, (await offClient.GetAsync("/metrics")).StatusCode);
    }

    /// <summary>A gateway whose model <c>retried</c> tries <paramref name="broken"/> then <paramref name="healthy"/>, and whose
    /// model <c>primary</c> (on <paramref name="broken"/>) falls back to <c>secondary</c> (on <paramref name="healthy"/>).
    /// One failure opens a breaker.</summary>
    internal static Task<GatewayHost> ResilientGatewayAsync(FakeOpenAI broken, FakeOpenAI healthy) =>
        GatewayHost.StartAsync($$"""
            routing: { max_attempts: 3, backoff_base_ms: 1, backoff_max_ms: 1, breaker: { consecutive_failures: 1, cooldown_s: 600 } }
            providers:
              - name: broken
                type: openai
                base_url: {{broken.BaseUrl}}
                api_keys: [ sk-upstream-broken-secret ]
              - name: healthy
                type: openai
                base_url: {{healthy.BaseUrl}}
                api_keys: [ sk-upstream-healthy-secret ]
            models:
              - name: retried
                deployments:
                  - { provider: broken, model: a, priority: 0 }
                  - { provider: healthy, model: b, priority: 1 }
              - name: primary
                fallbacks: [ secondary ]
                deployments: [ { provider: broken, model: c } ]
              - name: secondary
                deployments: [ { provider: healthy, model: d } ]
            """);
}
