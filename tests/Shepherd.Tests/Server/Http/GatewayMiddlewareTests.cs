namespace Shepherd.Tests.Server.Http;

using System.Net;
using System.Text;
using Shepherd.Testing;

/// <summary>Request ids on every response and the one log line per request.</summary>
public sealed class GatewayMiddlewareTests : IAsyncLifetime
{
    private const string Marker = "purple-elephant-4711";

    private FakeOpenAI _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeOpenAI.StartAsync();
        _gateway = await StartGatewayAsync(bodies: false);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private Task<GatewayHost> StartGatewayAsync(bool bodies) => GatewayHost.StartAsync($$"""
        providers:
          - name: fake
            type: openai
            base_url: {{_upstream.BaseUrl}}
            api_keys: [ sk-upstream-secret-1 ]
            timeouts: { connect_ms: 2000, first_byte_ms: 10000, idle_ms: 10000 }
          - name: sim
            type: simulated
            simulated: { prompt_tokens: 13, completion_tokens: 5 }
        models:
          - name: gpt-test
            deployments: [ { provider: fake, model: upstream-model } ]
          - name: sim-model
            deployments: [ { provider: sim } ]
        logging: { bodies: {{(bodies ? "true" : "false")}} }
        """);

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static string ChatBody(string model, bool stream = false) =>
        $$"""{"model":"{{model}}","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"{{Marker}}"}]}""";

    private static async Task<string> RequestLineAsync(GatewayHost gateway, string requestId)
    {
        // The line is written once the response is complete, which can be just after the client has read it.
        for (var i = 0; i < 250; i++)
        {
            var line = gateway.Logs.Lines.FirstOrDefault(l => l.Contains(requestId, StringComparison.Ordinal) && l.Contains(" POST ", StringComparison.Ordinal) || (l.Contains(requestId, StringComparison.Ordinal) && l.Contains(" GET ", StringComparison.Ordinal)));
            if (line is not null)
            {
                return line;
            }

            await Task.Delay(20);
        }

        throw new Xunit.Sdk.XunitException($"No request line for {requestId}. Lines:\n{string.Join("\n", gateway.Logs.Lines)}");
    }

    public static TheoryData<string, string, string, string?, int> Requests() => new()
    {
        { "chat ok", "POST", "/v1/chat/completions", ChatBody("gpt-test"), 200 },
        { "stream ok", "POST", "/v1/chat/completions", ChatBody("sim-model", stream: true), 200 },
        { "bad key", "POST", "/v1/chat/completions", null, 401 },
        { "unknown model", "POST", "/v1/chat/completions", ChatBody("nope"), 404 },
        { "invalid json", "POST", "/v1/chat/completions", "{\"model\":", 400 },
        { "invalid request", "POST", "/v1/chat/completions", """{"model":"gpt-test","messages":[]}""", 400 },
        { "unknown url", "GET", "/v1/nothing-here", null, 404 },
        { "wrong method", "GET", "/v1/chat/completions", null, 405 },
        { "models", "GET", "/v1/models", null, 200 },
        { "health", "GET", "/health", null, 200 },
        { "ready", "GET", "/health/ready", null, 200 },
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public async Task EveryResponse_CarriesRequestId(string what, string method, string path, string? body, int status)
    {
        using var client = what == "bad key" ? _gateway.CreateClient("sk-wrong") : _gateway.CreateClient(GatewayHost.TestMasterKey);
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        request.Content = method == "POST" ? Json(body ?? ChatBody("gpt-test")) : null;

        using var response = await client.SendAsync(request);

        Assert.Equal(status, (int)response.StatusCode);
        var id = Assert.Single(response.Headers.GetValues("x-request-id"));
        Assert.Matches("^req_[0-9a-f]{12}[0-9a-f]{12}$", id);
    }

    [Fact]
    public async Task UpstreamError_CarriesRequestId()
    {
        _upstream.Faults.Always(Fault.WithStatus(500));

        var response = await _gateway.Client.PostAsync("/v1/chat/completions", Json(ChatBody("gpt-test", stream: true)));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Single(response.Headers.GetValues("x-request-id"));
    }

    [Fact]
    public async Task MidStreamError_ResponseStillCarriesRequestId()
    {
        _upstream.Faults.Always(new Fault { DropAfterEvents = 2, DelayBetweenEvents = TimeSpan.FromMilliseconds(100) });

        var response = await _gateway.Client.PostAsync("/v1/chat/completions", Json(ChatBody("gpt-test", stream: true)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Single(response.Headers.GetValues("x-request-id"));
        Assert.Contains("\"error\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RequestIds_UniquePerRequest()
    {
        var ids = new HashSet<string>();
        for (var i = 0; i < 5; i++)
        {
            var response = await _gateway.Client.GetAsync("/health");
            ids.Add(response.Headers.GetValues("x-request-id").Single());
        }

        Assert.Equal(5, ids.Count);
    }

    [Theory]
    [InlineData("has space")]
    [InlineData("new\\nline")]
    [InlineData("<script>")]
    public async Task ClientRequestId_Unsafe_Replaced(string unsafeId)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/health");
        request.Headers.TryAddWithoutValidation("x-request-id", unsafeId);

        var response = await _gateway.Client.SendAsync(request);

        var id = response.Headers.GetValues("x-request-id").Single();
        Assert.NotEqual(unsafeId, id);
        Assert.StartsWith("req_", id, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ClientRequestId_TooLong_Replaced()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/health");
        request.Headers.Add("x-request-id", new string('a', 500));

        var response = await _gateway.Client.SendAsync(request);

        Assert.StartsWith("req_", response.Headers.GetValues("x-request-id").Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RequestLine_NonStreamed_HasIdModelProviderStatusLatencyAndTokens()
    {
        var response = await _gateway.Client.PostAsync("/v1/chat/completions", Json(ChatBody("gpt-test")));
        var id = response.Headers.GetValues("x-request-id").Single();

        var line = await RequestLineAsync(_gateway, id);

        Assert.Contains($"{id} POST /v1/chat/completions 200 ", line, StringComparison.Ordinal);
        Assert.Matches(@" \d+\.\dms ", line);
        Assert.Contains("model=gpt-test", line, StringComparison.Ordinal);
        Assert.Contains("provider=fake", line, StringComparison.Ordinal);
        Assert.Contains("stream=False", line, StringComparison.Ordinal);
        Assert.Contains("prompt_tokens=11", line, StringComparison.Ordinal);
        Assert.Contains("completion_tokens=7", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RequestLine_Streamed_HasTokensFromTheStream()
    {
        var response = await _gateway.Client.PostAsync("/v1/chat/completions", Json(ChatBody("sim-model", stream: true)));
        await response.Content.ReadAsStringAsync();
        var id = response.Headers.GetValues("x-request-id").Single();

        var line = await RequestLineAsync(_gateway, id);

        Assert.Contains($"{id} POST /v1/chat/completions 200 ", line, StringComparison.Ordinal);
        Assert.Contains("model=sim-model", line, StringComparison.Ordinal);
        Assert.Contains("provider=sim", line, StringComparison.Ordinal);
        Assert.Contains("stream=True", line, StringComparison.Ordinal);
        Assert.Contains("prompt_tokens=13", line, StringComparison.Ordinal);
        Assert.Contains("completion_tokens=5", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RequestLine_UpstreamFailure_HasStatusAndErrorCode()
    {
        _upstream.Faults.Always(Fault.WithStatus(503));

        var response = await _gateway.Client.PostAsync("/v1/chat/completions", Json(ChatBody("gpt-test")));
        var id = response.Headers.GetValues("x-request-id").Single();

        var line = await RequestLineAsync(_gateway, id);

        Assert.Contains($"{id} POST /v1/chat/completions 502 ", line, StringComparison.Ordinal);
        Assert.Contains("provider=fake", line, StringComparison.Ordinal);
        Assert.Contains("error=", line, StringComparison.Ordinal);
        Assert.DoesNotContain("error=,", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bodies_NotLoggedByDefault()
    {
        var response = await _gateway.Client.PostAsync("/v1/chat/completions", Json(ChatBody("gpt-test")));
        await RequestLineAsync(_gateway, response.Headers.GetValues("x-request-id").Single());
        response = await _gateway.Client.PostAsync("/v1/chat/completions", Json(ChatBody("sim-model", stream: true)));
        await response.Content.ReadAsStringAsync();
        await RequestLineAsync(_gateway, response.Headers.GetValues("x-request-id").Single());

        Assert.DoesNotContain(_gateway.Logs.Lines, l => l.Contains(Marker, StringComparison.Ordinal));
        Assert.DoesNotContain(_gateway.Logs.Lines, l => l.Contains("Hello from the fake upstream", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Bodies_LoggedWhenEnabled_ButNeverKeys()
    {
        await using var gateway = await StartGatewayAsync(bodies: true);

        var response = await gateway.Client.PostAsync("/v1/chat/completions", Json(ChatBody("gpt-test")));
        var id = response.Headers.GetValues("x-request-id").Single();
        await RequestLineAsync(gateway, id);

        Assert.Contains(gateway.Logs.Lines, l => l.Contains(id, StringComparison.Ordinal) && l.Contains(Marker, StringComparison.Ordinal));
        Assert.Contains(gateway.Logs.Lines, l => l.Contains(id, StringComparison.Ordinal) && l.Contains("Hello from the fake upstream", StringComparison.Ordinal));
        Assert.DoesNotContain(gateway.Logs.Lines, l => l.Contains("sk-upstream-secret-1", StringComparison.Ordinal) || l.Contains(GatewayHost.TestMasterKey, StringComparison.Ordinal));
    }
}
