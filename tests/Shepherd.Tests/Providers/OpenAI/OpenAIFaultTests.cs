namespace Shepherd.Tests.Providers.OpenAI;

using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Shepherd.Testing;

/// <summary>Upstream faults injected behind a real gateway: what the client sees, and what never leaks.</summary>
public sealed class OpenAIFaultTests : IAsyncLifetime
{
    private const string UpstreamKey = "sk-upstream-secret-1";
    private const string Question = "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";

    private FakeOpenAI _upstream = null!;
    private FakeUpstream _custom = null!;
    private GatewayHost _gateway = null!;
    private Func<HttpContext, Task> _customHandler = _ => Task.CompletedTask;
    private Blackhole _blackhole = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeOpenAI.StartAsync();
        _custom = await FakeUpstream.StartAsync((context, _) => _customHandler(context));
        var closedPort = ClosedPort();
        _blackhole = Blackhole.Open();
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - name: fake
                type: openai
                base_url: {{_upstream.BaseUrl}}
                api_keys: [ {{UpstreamKey}} ]
                timeouts: { connect_ms: 2000, first_byte_ms: 10000, idle_ms: 10000 }
              - name: quick
                type: openai
                base_url: {{_upstream.BaseUrl}}
                api_keys: [ {{UpstreamKey}} ]
                timeouts: { connect_ms: 500, first_byte_ms: 500, idle_ms: 1000 }
              - name: custom
                type: openai
                base_url: {{_custom.BaseUrl}}/v1
                api_keys: [ {{UpstreamKey}} ]
                timeouts: { connect_ms: 2000, first_byte_ms: 5000, idle_ms: 1000 }
              - name: blackhole
                type: openai
                base_url: http://127.0.0.1:{{_blackhole.Port}}/v1
                api_keys: [ {{UpstreamKey}} ]
                timeouts: { connect_ms: 300, first_byte_ms: 10000 }
              - name: dead
                type: openai
                base_url: http://127.0.0.1:{{closedPort}}/v1
                api_keys: [ {{UpstreamKey}} ]
                timeouts: { connect_ms: 2000 }
            models:
              - name: gpt-test
                deployments: [ { provider: fake, model: upstream-model } ]
              - name: gpt-quick
                deployments: [ { provider: quick, model: upstream-model } ]
              - name: gpt-custom
                deployments: [ { provider: custom, model: upstream-model } ]
              - name: gpt-dead
                deployments: [ { provider: dead, model: upstream-model } ]
              - name: gpt-blackhole
                deployments: [ { provider: blackhole, model: upstream-model } ]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _custom.DisposeAsync();
        await _upstream.DisposeAsync();
        _blackhole.Dispose();
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private async Task<(HttpResponseMessage Response, string Body)> PostAsync(string model, bool stream)
    {
        var json = $$"""{"model":"{{model}}","stream":{{(stream ? "true" : "false")}},{{Question}}}""";
        var response = await _gateway.Client.PostAsync("/v1/chat/completions", new StringContent(json, Encoding.UTF8, "application/json"));
        return (response, await response.Content.ReadAsStringAsync());
    }

    private static JsonElement Error(string body)
    {
        using var document = JsonDocument.Parse(body);
        return document.RootElement.GetProperty("error").Clone();
    }

    private void AssertKeyNeverShown(string body)
    {
        Assert.DoesNotContain(UpstreamKey, body, StringComparison.Ordinal);
        Assert.DoesNotContain(_gateway.Logs.Lines, line => line.Contains(UpstreamKey, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(400, false)]
    [InlineData(404, false)]
    [InlineData(422, false)]
    [InlineData(400, true)]
    [InlineData(404, true)]
    [InlineData(422, true)]
    public async Task UpstreamCallerFault_ReturnedWithItsStatusAndMessage(int status, bool stream)
    {
        _upstream.Faults.Always(Fault.WithStatus(status, FakeOpenAI.Error(status, $"You did something wrong ({status}).", code: "invalid_value")));

        var (response, body) = await PostAsync("gpt-test", stream);

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        var error = Error(body);
        Assert.Equal($"You did something wrong ({status}).", error.GetProperty("message").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("invalid_value", error.GetProperty("code").GetString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Upstream429WithRetryAfter_429WithRetryAfter(bool stream)
    {
        _upstream.Faults.Always(Fault.WithStatus(429, FakeOpenAI.Error(429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded"), ("retry-after", "7")));

        var (response, body) = await PostAsync("gpt-test", stream);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(7), response.Headers.RetryAfter!.Delta);
        var error = Error(body);
        Assert.Equal("rate_limit_exceeded", error.GetProperty("code").GetString());
        Assert.Equal("Rate limit reached for requests.", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Upstream429WithRetryAfterMs_RoundedUpToSecondsAndPassedInMs()
    {
        _upstream.Faults.Always(Fault.WithStatus(429, FakeOpenAI.Error(429, "Slow down."), ("retry-after-ms", "1500")));

        var (response, body) = await PostAsync("gpt-test", stream: false);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(2), response.Headers.RetryAfter!.Delta);
        Assert.Equal("1500", response.Headers.GetValues("retry-after-ms").Single());
        Assert.Equal("Slow down.", Error(body).GetProperty("message").GetString());
    }

    [Fact]
    public async Task UpstreamInsufficientQuota_429()
    {
        _upstream.Faults.Always(Fault.WithStatus(429, FakeOpenAI.Error(429, "You exceeded your current quota.", "insufficient_quota", "insufficient_quota")));

        var (response, body) = await PostAsync("gpt-test", stream: false);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("insufficient_quota", Error(body).GetProperty("code").GetString());
    }

    [Theory]
    [InlineData(500, false)]
    [InlineData(502, false)]
    [InlineData(503, false)]
    [InlineData(500, true)]
    [InlineData(503, true)]
    public async Task UpstreamServerError_502(int status, bool stream)
    {
        _upstream.Faults.Always(Fault.WithStatus(status));

        var (response, body) = await PostAsync("gpt-test", stream);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var error = Error(body);
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
    }

    [Fact]
    public async Task UpstreamRedirect_502NotFollowed()
    {
        _upstream.Faults.Always(new Fault { Status = 301, Body = "", Headers = new Dictionary<string, string> { ["location"] = "https://elsewhere.example/v1/chat/completions" } });

        var (response, _) = await PostAsync("gpt-test", stream: false);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal(1, _upstream.Server.StartedCount);
    }

    [Fact]
    public async Task UpstreamOutOfCredit402_429()
    {
        _upstream.Faults.Always(Fault.WithStatus(402, FakeOpenAI.Error(402, "Insufficient Balance")));

        var (response, body) = await PostAsync("gpt-test", stream: false);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("Insufficient Balance", Error(body).GetProperty("message").GetString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task UpstreamDropsConnectionWithoutAnswer_502(bool stream)
    {
        _upstream.Faults.Always(new Fault { DropConnection = true });

        var (response, body) = await PostAsync("gpt-test", stream);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("server_error", Error(body).GetProperty("type").GetString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task UpstreamHtmlErrorPage_502WithCleanMessage(bool stream)
    {
        _upstream.Faults.Always(new Fault
        {
            Status = 502,
            ContentType = "text/html",
            Body = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body>\r\n</html>",
        });

        var (response, body) = await PostAsync("gpt-test", stream);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        var message = Error(body).GetProperty("message").GetString()!;
        Assert.DoesNotContain("<", message, StringComparison.Ordinal);
        Assert.Contains("HTML", message, StringComparison.Ordinal);
        Assert.Contains("502", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UpstreamVllmFlatError_NormalisedToOpenAIEnvelope()
    {
        _upstream.Faults.Always(Fault.WithStatus(400, """{"object":"error","message":"temperature must be non-negative, got -1.0.","type":"BadRequestError","param":null,"code":400}"""));

        var (response, body) = await PostAsync("gpt-test", stream: false);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = Error(body);
        Assert.Equal("temperature must be non-negative, got -1.0.", error.GetProperty("message").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Null, error.GetProperty("code").ValueKind);
        Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
    }

    [Fact]
    public async Task UpstreamVllmFlatContextOverflow_400ContextLengthExceeded()
    {
        _upstream.Faults.Always(Fault.WithStatus(400, """{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.","type":"BadRequestError","param":null,"code":400}"""));

        var (response, body) = await PostAsync("gpt-test", stream: true);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("context_length_exceeded", Error(body).GetProperty("code").GetString());
    }

    [Fact]
    public async Task UpstreamVllmWrappedNotFound_404()
    {
        _upstream.Faults.Always(Fault.WithStatus(404, """{"error":{"object":"error","message":"The model `upstream-model` does not exist.","type":"NotFoundError","param":null,"code":404}}"""));

        var (response, body) = await PostAsync("gpt-test", stream: false);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var error = Error(body);
        Assert.Equal("The model `upstream-model` does not exist.", error.GetProperty("message").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
    }

    [Theory]
    [InlineData(401, false)]
    [InlineData(403, false)]
    [InlineData(401, true)]
    public async Task UpstreamRefusesGatewayKey_502AndKeyNeverShown(int status, bool stream)
    {
        _upstream.Faults.Always(Fault.WithStatus(status, FakeOpenAI.Error(
            status,
            $"Incorrect API key provided: {UpstreamKey}. You can find your API key at https://platform.openai.com/account/api-keys.",
            code: "invalid_api_key")));

        var (response, body) = await PostAsync("gpt-test", stream);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream_auth_failed", Error(body).GetProperty("code").GetString());
        AssertKeyNeverShown(body);
        var ready = await _gateway.Client.GetStringAsync("/health/ready");
        AssertKeyNeverShown(ready);
    }

    [Theory]
    [InlineData($"Incorrect API key provided: {UpstreamKey}.")]
    [InlineData("Incorrect API key provided: sk-upstr************et-1.")]
    [InlineData($"Key '{UpstreamKey}' is not allowed to use this model; also sk-proj-abcdefghijklmnop is not.")]
    public async Task UpstreamMessageEchoingAKey_Scrubbed(string message)
    {
        _upstream.Faults.Always(Fault.WithStatus(400, FakeOpenAI.Error(400, message)));

        var (response, body) = await PostAsync("gpt-test", stream: false);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var shown = Error(body).GetProperty("message").GetString()!;
        Assert.Contains("***", shown, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-", shown, StringComparison.Ordinal);
        AssertKeyNeverShown(body);
        Assert.DoesNotContain(_gateway.Logs.Lines, line => line.Contains("sk-upstr***", StringComparison.Ordinal) || line.Contains("sk-proj-abc", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task UpstreamConnectionRefused_502(bool stream)
    {
        var (response, body) = await PostAsync("gpt-dead", stream);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var error = Error(body);
        Assert.Equal("upstream_unreachable", error.GetProperty("code").GetString());
        Assert.DoesNotContain("127.0.0.1", error.GetProperty("message").GetString()!, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task UpstreamConnectTimeout_502Unreachable(bool stream)
    {
        var (response, body) = await PostAsync("gpt-blackhole", stream);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream_unreachable", Error(body).GetProperty("code").GetString());
        Assert.DoesNotContain(_gateway.Logs.Lines, l => l.StartsWith("Error", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task UpstreamHeadersLate_504AndUpstreamCancelled(bool stream)
    {
        _upstream.Faults.Always(new Fault { DelayBeforeHeaders = TimeSpan.FromSeconds(30) });

        var (response, body) = await PostAsync("gpt-quick", stream);

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("timeout", Error(body).GetProperty("code").GetString());
        await _upstream.Server.WaitForCancellationsAsync();
    }

    [Fact]
    public async Task UpstreamBodyStalls_504()
    {
        _customHandler = async context =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"id":"chatcmpl-1","object":"chat.completion","choices":[""", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        };

        var (response, body) = await PostAsync("gpt-custom", stream: false);

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("timeout", Error(body).GetProperty("code").GetString());
        await _custom.WaitForCancellationsAsync();
    }

    [Fact]
    public async Task UpstreamBodyTruncated_502()
    {
        _customHandler = async context =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"id":"chatcmpl-1","object":"chat.completion","choices":[""", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            context.Abort();
        };

        var (response, _) = await PostAsync("gpt-custom", stream: false);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
    }

    [Fact]
    public async Task StreamDroppedMidway_ChunksSoFarThenErrorEventWithoutDone()
    {
        _upstream.Faults.Always(new Fault { DropAfterEvents = 3, DelayBetweenEvents = TimeSpan.FromMilliseconds(150) });

        var (response, body) = await PostAsync("gpt-test", stream: true);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Sse.DataEvents(body);
        Assert.DoesNotContain("[DONE]", events);
        Assert.Equal("Hello from", Sse.Content(events));
        Assert.Equal(4, events.Count);
        var error = Error(events[^1]);
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.EndsWith("\n\n", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StreamStalls_ErrorEventAfterIdleTimeout()
    {
        _upstream.Faults.Always(new Fault { StallAfterEvents = 2 });

        var (response, body) = await PostAsync("gpt-quick", stream: true);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Sse.DataEvents(body);
        Assert.DoesNotContain("[DONE]", events);
        Assert.Equal("Hello", Sse.Content(events));
        Assert.Equal("timeout", Error(events[^1]).GetProperty("code").GetString());
        await _upstream.Server.WaitForCancellationsAsync();
    }

    [Fact]
    public async Task StreamFailsBeforeAnyEvent_HttpErrorStatus()
    {
        _upstream.Faults.Always(new Fault { DropAfterEvents = 0 });

        var (response, body) = await PostAsync("gpt-test", stream: true);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("server_error", Error(body).GetProperty("type").GetString());
    }

    [Fact]
    public async Task StreamFirstEventLate_504()
    {
        _upstream.Faults.Always(new Fault { DelayBeforeFirstEvent = TimeSpan.FromSeconds(30) });

        var (response, body) = await PostAsync("gpt-quick", stream: true);

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("timeout", Error(body).GetProperty("code").GetString());
    }

    [Fact]
    public async Task StreamMalformedChunk_ErrorEventAndNothingRelayedOfIt()
    {
        _customHandler = async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(
                "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n" +
                "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n" +
                "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"broken\"\n\n" +
                "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" never\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
                context.RequestAborted);
        };

        var (response, body) = await PostAsync("gpt-custom", stream: true);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Sse.DataEvents(body);
        Assert.Equal(3, events.Count);
        Assert.Equal("Hi", Sse.Content(events.Take(2)));
        Assert.DoesNotContain("broken", body, StringComparison.Ordinal);
        Assert.Equal("bad_upstream_response", Error(events[^1]).GetProperty("code").GetString());
    }

    /// <remarks>Disposing an unfinished HTTP/1.1 body would drain it for up to 2 s while the upstream keeps generating;
    /// the gateway aborts it instead, so the upstream learns well within that.</remarks>
    [Theory]
    [InlineData("data: {broken\n\n")]
    [InlineData("data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n")]
    public async Task StreamEndsInErrorWhileUpstreamStillSends_UpstreamConnectionAbortedNotDrained(string failingEvent)
    {
        _customHandler = async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(
                "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n" + failingEvent,
                context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            while (true)
            {
                await Task.Delay(50, context.RequestAborted);
                await context.Response.WriteAsync(": keep-alive\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        };

        var (response, body) = await PostAsync("gpt-custom", stream: true);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"error\"", Sse.DataEvents(body)[^1], StringComparison.Ordinal);
        await _custom.WaitForCancellationsAsync(timeoutMs: 1500);
    }

    [Fact]
    public async Task StreamRequestAnsweredWithJson_502()
    {
        _customHandler = async context =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}""");
        };

        var (response, body) = await PostAsync("gpt-custom", stream: true);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("bad_upstream_response", Error(body).GetProperty("code").GetString());
    }

    [Fact]
    public async Task StreamEndsWithoutFinishOrDone_ErrorEvent()
    {
        _customHandler = async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(
                "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n");
        };

        var (response, body) = await PostAsync("gpt-custom", stream: true);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Sse.DataEvents(body);
        Assert.Equal("Hi", Sse.Content(events.Take(1)));
        Assert.DoesNotContain("[DONE]", events);
        Assert.Equal("bad_upstream_response", Error(events[^1]).GetProperty("code").GetString());
    }

    [Fact]
    public async Task StreamInBandUpstreamError_RelayedAsErrorEvent()
    {
        _customHandler = async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(
                "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n" +
                $"data: {{\"error\":{{\"message\":\"The server had an error while processing your request ({UpstreamKey}).\",\"type\":\"server_error\",\"param\":null,\"code\":null}}}}\n\n");
        };

        var (response, body) = await PostAsync("gpt-custom", stream: true);

        var events = Sse.DataEvents(body);
        Assert.Equal(2, events.Count);
        Assert.Contains("The server had an error", Error(events[^1]).GetProperty("message").GetString()!, StringComparison.Ordinal);
        AssertKeyNeverShown(body);
    }

    /// <summary>A port whose accept queue is full: connection attempts get no answer at all (SYNs are dropped), as
    /// with a firewalled host, so only the connect timeout ends them.</summary>
    private sealed class Blackhole : IDisposable
    {
        private readonly Socket _listener;
        private readonly List<Socket> _fillers = [];

        private Blackhole(Socket listener) => _listener = listener;

        public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;

        public static Blackhole Open()
        {
            var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(1);
            var hole = new Blackhole(listener);

            // With a backlog of 1 the queue holds two connections; never accepting them keeps it full.
            for (var i = 0; i < 2; i++)
            {
                var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                filler.Connect(new IPEndPoint(IPAddress.Loopback, hole.Port));
                hole._fillers.Add(filler);
            }

            return hole;
        }

        public void Dispose()
        {
            foreach (var filler in _fillers)
            {
                filler.Dispose();
            }

            _listener.Dispose();
        }
    }
}
