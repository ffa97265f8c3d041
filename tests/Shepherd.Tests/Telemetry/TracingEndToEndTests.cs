namespace Shepherd.Tests.Telemetry;

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;
using Shepherd.Telemetry;
using Shepherd.Testing;

/// <summary>
/// The spans of the <c>Shepherd</c> activity source, seen by an in-process listener: one server span per chat request
/// with one client span per upstream attempt, GenAI attributes, and never a key.
/// </summary>
/// <remarks>The listener sees every gateway in the process; each test finds its own spans by request id.</remarks>
public sealed class TracingEndToEndTests : IAsyncLifetime, IDisposable
{
    private readonly ConcurrentQueue<Activity> _stopped = new();
    private readonly ActivityListener _listener;
    private FakeOpenAI _broken = null!;
    private FakeOpenAI _healthy = null!;
    private GatewayHost _gateway = null!;

    public TracingEndToEndTests()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == ShepherdTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public async Task InitializeAsync()
    {
        _broken = await FakeOpenAI.StartAsync();
        _broken.Faults.Always(Fault.WithStatus(500));
        _healthy = await FakeOpenAI.StartAsync();
        _gateway = await MetricsEndToEndTests.ResilientGatewayAsync(_broken, _healthy);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _broken.DisposeAsync();
        await _healthy.DisposeAsync();
    }

    public void Dispose() => _listener.Dispose();

    private async Task<HttpResponseMessage> ChatAsync(string requestId, bool stream = false, string? traceparent = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent(
                $$"""{"model":"retried","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}""",
                Encoding.UTF8,
                "application/json"),
        };
        request.Headers.Add("x-request-id", requestId);
        if (traceparent is not null)
        {
            request.Headers.Add("traceparent", traceparent);
        }

        var response = await _gateway.Client.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    /// <summary>The request span with this id and its children, once the request span has ended (just after the response).</summary>
    private async Task<(Activity Request, List<Activity> Attempts)> SpansAsync(string requestId)
    {
        for (var i = 0; i < 200; i++)
        {
            var request = _stopped.FirstOrDefault(a => (a.GetTagItem(ShepherdTracing.RequestId) as string) == requestId);
            if (request is not null)
            {
                var attempts = _stopped.Where(a => a.ParentSpanId == request.SpanId && a.TraceId == request.TraceId).OrderBy(a => a.StartTimeUtc).ToList();
                return (request, attempts);
            }

            await Task.Delay(20);
        }

        throw new Xunit.Sdk.XunitException($"no span for request {requestId}");
    }

    [Fact]
    public async Task Request_WithOneRetry_OneServerSpanWithTwoAttemptSpans()
    {
        var id = "trace-test-" + Guid.NewGuid().ToString("N");
        using var response = await ChatAsync(id);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var (request, attempts) = await SpansAsync(id);
        Assert.Equal("chat retried", request.DisplayName);
        Assert.Equal(ActivityKind.Server, request.Kind);
        Assert.Equal("chat", request.GetTagItem("gen_ai.operation.name"));
        Assert.Equal("retried", request.GetTagItem("gen_ai.request.model"));
        Assert.Equal("retried", request.GetTagItem("gen_ai.response.model"));
        Assert.Equal("healthy", request.GetTagItem("gen_ai.provider.name"));
        Assert.Equal("healthy/b", request.GetTagItem("shepherd.deployment"));
        Assert.Equal(11, request.GetTagItem("gen_ai.usage.input_tokens"));
        Assert.Equal(7, request.GetTagItem("gen_ai.usage.output_tokens"));
        Assert.Equal(200, request.GetTagItem("http.response.status_code"));
        Assert.Equal(2, request.GetTagItem("shepherd.attempts"));
        Assert.Equal("master", request.GetTagItem("shepherd.key.id"));
        Assert.Null(request.GetTagItem("error.type"));
        Assert.Equal(ActivityStatusCode.Unset, request.Status);

        Assert.Equal(2, attempts.Count);
        var (first, second) = (attempts[0], attempts[1]);
        Assert.All(attempts, a => Assert.Equal(ActivityKind.Client, a.Kind));
        Assert.All(attempts, a => Assert.Equal("chat", a.GetTagItem("gen_ai.operation.name")));

        Assert.Equal("chat a", first.DisplayName);
        Assert.Equal("broken/a", first.GetTagItem("shepherd.deployment"));
        Assert.Equal("broken", first.GetTagItem("gen_ai.provider.name"));
        Assert.Equal("a", first.GetTagItem("gen_ai.request.model"));
        Assert.Equal("broken#0", first.GetTagItem("shepherd.upstream_key.id"));
        Assert.Equal(1, first.GetTagItem("shepherd.attempt"));
        Assert.Equal("transient", first.GetTagItem("shepherd.outcome"));
        Assert.Equal("transient", first.GetTagItem("error.type"));
        Assert.Equal(500, first.GetTagItem("http.response.status_code"));
        Assert.Equal(ActivityStatusCode.Error, first.Status);

        Assert.Equal("chat b", second.DisplayName);
        Assert.Equal("healthy/b", second.GetTagItem("shepherd.deployment"));
        Assert.Equal("healthy#0", second.GetTagItem("shepherd.upstream_key.id"));
        Assert.Equal(2, second.GetTagItem("shepherd.attempt"));
        Assert.Equal("success", second.GetTagItem("shepherd.outcome"));
        Assert.Null(second.GetTagItem("error.type"));
        Assert.NotEqual(ActivityStatusCode.Error, second.Status);

        // No span, name or attribute carries a key: not the upstream keys, not the client's.
        foreach (var span in attempts.Append(request))
        {
            var text = span.DisplayName + " " + string.Join(" ", span.TagObjects.Select(t => $"{t.Key}={t.Value}"));
            Assert.DoesNotContain("sk-upstream", text, StringComparison.Ordinal);
            Assert.DoesNotContain(GatewayHost.TestMasterKey, text, StringComparison.Ordinal);
        }

        // And the trace context went nowhere upstream (telemetry.propagate is off).
        Assert.All(_broken.Server.Requests.Concat(_healthy.Server.Requests), r => Assert.False(r.Headers.ContainsKey("traceparent")));
    }

    [Fact]
    public async Task StreamedRequest_AttemptSpanEndsWithTheStream()
    {
        var id = "trace-stream-" + Guid.NewGuid().ToString("N");
        using var response = await ChatAsync(id, stream: true);
        Assert.Contains("[DONE]", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var (request, attempts) = await SpansAsync(id);
        Assert.Equal(2, attempts.Count);
        Assert.Equal("success", attempts[1].GetTagItem("shepherd.outcome"));
        Assert.Equal(7, request.GetTagItem("gen_ai.usage.output_tokens"));
        Assert.True(attempts[1].StartTimeUtc + attempts[1].Duration <= request.StartTimeUtc + request.Duration);
    }

    [Fact]
    public async Task Request_WithClientTraceparent_ContinuesTheClientsTrace()
    {
        var id = "trace-parent-" + Guid.NewGuid().ToString("N");
        var traceId = ActivityTraceId.CreateRandom();
        var parentSpan = ActivitySpanId.CreateRandom();
        using var response = await ChatAsync(id, traceparent: $"00-{traceId}-{parentSpan}-01");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var (request, attempts) = await SpansAsync(id);
        Assert.Equal(traceId, request.TraceId);
        Assert.Equal(parentSpan, request.ParentSpanId);
        Assert.All(attempts, a => Assert.Equal(traceId, a.TraceId));
    }

    [Theory]
    [InlineData("garbage")]
    [InlineData("00-00000000000000000000000000000000-0000000000000000-01")]
    [InlineData("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331")]
    public async Task Request_WithMalformedTraceparent_StartsANewTrace(string traceparent)
    {
        var id = "trace-bad-" + Guid.NewGuid().ToString("N");
        using var response = await ChatAsync(id, traceparent: traceparent);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var (request, attempts) = await SpansAsync(id);
        Assert.NotEqual(default, request.TraceId);
        Assert.Equal(default, request.ParentSpanId);
        Assert.All(attempts, a => Assert.Equal(request.TraceId, a.TraceId));
    }

    [Fact]
    public async Task Propagate_On_UpstreamGetsTheAttemptSpansTraceparent()
    {
        await using var gateway = await GatewayHost.StartAsync($$"""
            telemetry: { propagate: true }
            providers:
              - { name: own, type: openai, base_url: "{{_healthy.BaseUrl}}", api_keys: [ sk-upstream-own-secret ] }
            models: [ { name: m, deployments: [ { provider: own, model: up } ] } ]
            """);
        var id = "trace-propagate-" + Guid.NewGuid().ToString("N");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"m","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("x-request-id", id);
        using var response = await gateway.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var (_, attempts) = await SpansAsync(id);
        var attempt = Assert.Single(attempts);
        var sent = _healthy.Server.Requests.Last();
        Assert.Equal($"00-{attempt.TraceId}-{attempt.SpanId}-01", sent.Headers["traceparent"]);
    }

    [Fact]
    public async Task OtlpEndpoint_OnlyWhenConfigured_IsThereATracerProvider()
    {
        const string Models = """
            providers: [ { name: sim, type: simulated } ]
            models: [ { name: m, deployments: [ { provider: sim } ] } ]
            """;
        await using (var untraced = await GatewayHost.StartAsync(Models))
        {
            Assert.Null(untraced.Services.GetService<TracerProvider>());
        }

        await using var traced = await GatewayHost.StartAsync(Models + "\ntelemetry: { otlp_endpoint: \"http://127.0.0.1:9\", sample_ratio: 0 }");
        Assert.NotNull(traced.Services.GetService<TracerProvider>());
    }
}
