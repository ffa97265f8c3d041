namespace Shepherd.Tests.Providers.OpenAI;

using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Shepherd.Testing;

/// <summary>The OpenAI-compatible adapter behind a real gateway: what reaches the upstream, and wire variants coming back.</summary>
public sealed class OpenAIProviderTests : IAsyncLifetime
{
    private FakeOpenAI _upstream = null!;
    private FakeUpstream _custom = null!;
    private GatewayHost _gateway = null!;
    private Func<HttpContext, Task> _customHandler = _ => Task.CompletedTask;

    public async Task InitializeAsync()
    {
        _upstream = await FakeOpenAI.StartAsync();
        _custom = await FakeUpstream.StartAsync((context, _) => _customHandler(context));
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - name: fake
                type: openai
                base_url: {{_upstream.BaseUrl}}
                api_keys: [ sk-upstream-secret-1 ]
                headers: { OpenAI-Organization: org-test }
              - name: fake-keep
                type: openai
                base_url: {{_upstream.BaseUrl}}
                developer_role: keep
              - name: custom
                type: openai
                base_url: {{_custom.BaseUrl}}/v1
            models:
              - name: gpt-test
                deployments: [ { provider: fake, model: upstream-model } ]
              - name: gpt-keep
                deployments: [ { provider: fake-keep, model: upstream-model } ]
              - name: gpt-custom
                deployments: [ { provider: custom, model: upstream-model } ]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _custom.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private async Task<(HttpResponseMessage Response, string Body)> PostAsync(string json)
    {
        var response = await _gateway.Client.PostAsync("/v1/chat/completions", new StringContent(json, Encoding.UTF8, "application/json"));
        return (response, await response.Content.ReadAsStringAsync());
    }

    private static string Chunk(string delta, string? finish = null) =>
        $$"""{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{{delta}},"logprobs":null,"finish_reason":{{(finish is null ? "null" : $"\"{finish}\"")}}}]}""";

    [Fact]
    public async Task Request_CarriesKeyConfiguredHeadersAndJson()
    {
        await PostAsync("""{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}""");

        var sent = _upstream.Server.LastRequest;
        Assert.Equal("/v1/chat/completions", sent.Path);
        Assert.Equal("Bearer sk-upstream-secret-1", sent.Headers["authorization"]);
        Assert.Equal("org-test", sent.Headers["openai-organization"]);
        Assert.StartsWith("application/json", sent.Headers["content-type"], StringComparison.Ordinal);
        Assert.DoesNotContain(GatewayHost.TestMasterKey, string.Join("\n", sent.Headers.Values), StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeylessProvider_NoAuthorizationHeader()
    {
        await PostAsync("""{"model":"gpt-keep","messages":[{"role":"user","content":"hi"}]}""");

        Assert.False(_upstream.Server.LastRequest.Headers.ContainsKey("authorization"));
    }

    [Fact]
    public async Task DeveloperRole_NonOpenAIHost_SentAsSystem()
    {
        await PostAsync("""{"model":"gpt-test","messages":[{"role":"developer","content":"Be terse."},{"role":"user","content":"hi"}],"top_k":3}""");

        var sent = _upstream.Server.LastRequest.Json().RootElement;
        Assert.Equal("system", sent.GetProperty("messages")[0].GetProperty("role").GetString());
        Assert.Equal("Be terse.", sent.GetProperty("messages")[0].GetProperty("content").GetString());
        Assert.Equal(3, sent.GetProperty("top_k").GetInt32());
    }

    [Fact]
    public async Task DeveloperRole_ConfiguredKeep_SentAsIs()
    {
        await PostAsync("""{"model":"gpt-keep","messages":[{"role":"developer","content":"Be terse."},{"role":"user","content":"hi"}]}""");

        Assert.Equal("developer", _upstream.Server.LastRequest.Json().RootElement.GetProperty("messages")[0].GetProperty("role").GetString());
    }

    [Fact]
    public async Task NonStreamed_UpstreamAnswerRelayedByteForByte()
    {
        _upstream.CachedTokens = 4;
        _upstream.ReasoningTokens = 2;

        var (response, body) = await PostAsync("""{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(body);
        Assert.Equal("fp_fake", json.RootElement.GetProperty("system_fingerprint").GetString());
        Assert.Equal(4, json.RootElement.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(2, json.RootElement.GetProperty("usage").GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32());
    }

    [Fact]
    public async Task Streamed_LargeAndUnicodeChunks_RelayedIntact()
    {
        var big = string.Concat(Enumerable.Repeat("ünï😀 ", 60_000));
        _upstream.Reply = "Start " + big.Replace(" ", "_", StringComparison.Ordinal) + " end.";

        var (response, body) = await PostAsync("""{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Sse.DataEvents(body);
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(_upstream.Reply, Sse.Content(events));
    }

    [Fact]
    public async Task NonStreamed_LargeAnswer_RelayedIntact()
    {
        _upstream.Reply = new string('x', 3_000_000);

        var (response, body) = await PostAsync("""{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(body);
        Assert.Equal(_upstream.Reply, json.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task Streamed_CrlfCommentsAndSplitWrites_Understood()
    {
        _customHandler = async context =>
        {
            context.Response.ContentType = "text/event-stream; charset=utf-8";
            var text = ": keep-alive\r\n\r\n" +
                       $"data: {Chunk("""{"role":"assistant","content":""}""")}\r\n\r\n" +
                       ": ping\r\n\r\n" +
                       $"data: {Chunk("""{"content":"Hel"}""")}\r\n\r\n" +
                       $"data: {Chunk("""{"content":"lo"}""")}\n\n" +
                       $"data: {Chunk("{}", "stop")}\r\n\r\n" +
                       "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\r\n\r\n" +
                       "data: [DONE]\r\n\r\n";
            var bytes = Encoding.UTF8.GetBytes(text);
            for (var i = 0; i < bytes.Length; i += 7)
            {
                await context.Response.Body.WriteAsync(bytes.AsMemory(i, Math.Min(7, bytes.Length - i)), context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        };

        var (response, body) = await PostAsync("""{"model":"gpt-custom","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Sse.DataEvents(body);
        Assert.Equal("Hello", Sse.Content(events));
        Assert.Equal("[DONE]", events[^1]);
        Assert.DoesNotContain("keep-alive", body, StringComparison.Ordinal);
        Assert.Contains("\"total_tokens\":5", events[^2], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Streamed_UpstreamWithoutDoneButFinished_EndsCleanlyWithDone()
    {
        _customHandler = async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync($"data: {Chunk("""{"content":"Hi"}""")}\n\ndata: {Chunk("{}", "stop")}\n\n", context.RequestAborted);
        };

        var (_, body) = await PostAsync("""{"model":"gpt-custom","stream":true,"messages":[{"role":"user","content":"hi"}]}""");

        var events = Sse.DataEvents(body);
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal("Hi", Sse.Content(events));
        Assert.DoesNotContain(events, e => e.Contains("\"error\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Streamed_UsageChunk_StrippedUnlessAskedButCountedInLog()
    {
        var (response, body) = await PostAsync("""{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        var id = response.Headers.GetValues("x-request-id").Single();

        Assert.DoesNotContain("\"usage\":{", body, StringComparison.Ordinal);
        string? line = null;
        for (var i = 0; i < 250 && line is null; i++)
        {
            line = _gateway.Logs.Lines.FirstOrDefault(l => l.Contains($"{id} POST", StringComparison.Ordinal));
            await Task.Delay(20);
        }

        Assert.Contains("prompt_tokens=11 completion_tokens=7", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Streamed_ClientIncludeUsageFalse_UpstreamStillAskedForUsage()
    {
        var (_, body) = await PostAsync("""{"model":"gpt-test","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}""");

        Assert.True(_upstream.Server.LastRequest.Json().RootElement.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
        Assert.DoesNotContain("\"choices\":[]", body, StringComparison.Ordinal);
        Assert.Equal("[DONE]", Sse.DataEvents(body)[^1]);
    }
}
