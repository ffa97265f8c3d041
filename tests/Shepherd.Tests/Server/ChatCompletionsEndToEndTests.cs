namespace Shepherd.Tests.Server;

using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Shepherd.Testing;

/// <summary>The gateway over a fake OpenAI-compatible upstream, through real sockets.</summary>
public sealed class ChatCompletionsEndToEndTests : IAsyncLifetime
{
    private FakeOpenAI _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeOpenAI.StartAsync();
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - name: fake
                type: openai
                base_url: {{_upstream.BaseUrl}}
                api_keys: [ sk-upstream-secret-1 ]
            models:
              - name: gpt-test
                aliases: [ GT ]
                deployments:
                  - { provider: fake, model: upstream-model }
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task NonStreamed_AliasIsResolved_ModelRewrittenAndUnknownFieldsForwarded()
    {
        var response = await _gateway.Client.PostAsync("/v1/chat/completions", Json(
            """{"model":"gt","messages":[{"role":"user","content":"hi"}],"top_k":5,"x_custom":{"a":[1,2]}}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = _upstream.Server.LastRequest.Json().RootElement;
        Assert.Equal("upstream-model", sent.GetProperty("model").GetString());
        Assert.Equal(5, sent.GetProperty("top_k").GetInt32());
        Assert.Equal("""{"a":[1,2]}""", sent.GetProperty("x_custom").GetRawText());
        Assert.Equal("Bearer sk-upstream-secret-1", _upstream.Server.LastRequest.Headers["authorization"]);
        Assert.Equal("gpt-test", response.Headers.GetValues("x-shepherd-model").Single());
        Assert.True(response.Headers.Contains("x-request-id"));
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("Hello from the fake upstream.", body.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task Streamed_WithoutIncludeUsage_UsageRequestedUpstreamButStrippedForClient()
    {
        var response = await _gateway.Client.PostAsync("/v1/chat/completions", Json(
            """{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        Assert.DoesNotContain(events, e => e.Contains("\"choices\":[]", StringComparison.Ordinal));
        Assert.Equal("Hello from the fake upstream.", Sse.Content(events));
        var sent = _upstream.Server.LastRequest.Json().RootElement;
        Assert.True(sent.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
    }

    [Fact]
    public async Task Streamed_WithIncludeUsage_FinalUsageChunkRelayed()
    {
        var response = await _gateway.Client.PostAsync("/v1/chat/completions", Json(
            """{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"""));

        var events = Sse.DataEvents(await response.Content.ReadAsStringAsync());
        using var usage = JsonDocument.Parse(events[^2]);
        Assert.Equal(0, usage.RootElement.GetProperty("choices").GetArrayLength());
        Assert.Equal(18, usage.RootElement.GetProperty("usage").GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task RequestId_ClientValueIsEchoed()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Add("x-request-id", "my-trace-123");
        var response = await _gateway.Client.SendAsync(request);
        Assert.Equal("my-trace-123", response.Headers.GetValues("x-request-id").Single());
    }

    [Fact]
    public async Task Unauthenticated_Gets401WithOpenAIError()
    {
        using var client = _gateway.CreateClient("sk-wrong");
        var response = await client.PostAsync("/v1/chat/completions", Json("""{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("invalid_api_key", body.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(0, _upstream.Server.StartedCount);
    }

    [Fact]
    public async Task WrongMethod_Gets405WithOpenAIError()
    {
        var response = await _gateway.Client.GetAsync("/v1/chat/completions");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("invalid_request_error", body.RootElement.GetProperty("error").GetProperty("type").GetString());
    }
}
