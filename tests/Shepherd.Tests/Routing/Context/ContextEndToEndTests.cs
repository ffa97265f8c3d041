namespace Shepherd.Tests.Routing.Context;

using System.Net;
using System.Text;
using System.Text.Json;
using Shepherd.Testing;

/// <summary>Context management through a real gateway: what reaches the upstream, and what the client gets.</summary>
public sealed class ContextEndToEndTests : IAsyncLifetime
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
                api_keys: [ sk-upstream ]
            models:
              - name: small
                context_window: 1200
                context: { overflow: truncate, reserved_output: 200 }
                deployments: [ { provider: fake } ]
              - name: strict
                context_window: 1200
                context: { overflow: reject, reserved_output: 200 }
                deployments: [ { provider: fake } ]
              - name: big
                deployments: [ { provider: fake } ]
            routers:
              - name: auto
                rules:
                  - { name: tools, when: { has_tools: true }, model: small }
                  - { name: default, default: true, model: big }
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static string Lorem(string tag, int tokens) => tag + string.Concat(Enumerable.Repeat(" lorem", tokens - 1));

    private Task<HttpResponseMessage> PostAsync(string json) =>
        _gateway.Client.PostAsync("/v1/chat/completions", new StringContent(json, Encoding.UTF8, "application/json"));

    [Fact]
    public async Task Post_RejectModeTooLong_400ContextLengthExceededAndNothingSent()
    {
        using var response = await PostAsync($$"""{"model":"strict","messages":[{"role":"user","content":"{{Lorem("u", 1500)}}"}]}""");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = json.RootElement.GetProperty("error");
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Equal("messages", error.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Empty(_upstream.Server.Requests);
    }

    [Fact]
    public async Task Post_TruncateThroughARouter_UpstreamGetsSystemToolPairsAndNewestMessages()
    {
        var body = $$$"""
            {"model":"auto","tools":[{"type":"function","function":{"name":"lookup"}}],"messages":[
              {"role":"system","content":"sys"},
              {"role":"user","content":"{{{Lorem("u1", 50)}}}"},
              {"role":"assistant","tool_calls":[{"id":"call_a","type":"function","function":{"name":"lookup","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"call_a","content":"{{{Lorem("r1", 700)}}}"},
              {"role":"assistant","content":"a1"},
              {"role":"user","content":"{{{Lorem("u2", 300)}}}"}
            ]}
            """;

        using var response = await PostAsync(body);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("small", response.Headers.GetValues("x-shepherd-model").Single());
        var sent = _upstream.Server.LastRequest.Json().RootElement;
        var roles = sent.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("role").GetString()!).ToArray();
        Assert.Equal(["system", "assistant", "user"], roles);
        Assert.Equal("lookup", sent.GetProperty("tools")[0].GetProperty("function").GetProperty("name").GetString());
        Assert.Contains(_gateway.Logs.Lines, l => l.Contains("context of small: prompt ~", StringComparison.Ordinal) && l.Contains("3 oldest message(s) dropped", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Post_TruncateModeFits_BodyForwardedUnchanged()
    {
        using var response = await PostAsync("""{"model":"small","messages":[{"role":"user","content":"hi"}],"top_k":3}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(3, _upstream.Server.LastRequest.Json().RootElement.GetProperty("top_k").GetInt32());
    }
}
