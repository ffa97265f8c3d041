namespace Shepherd.Tests.Routing.Rules;

using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Shepherd.Testing;
using static Shepherd.Tests.Routing.Rules.RoutingFixtures;

/// <summary>One gateway with the auto-routing example over simulated providers, shared by the tests below.</summary>
public sealed class AutoRoutingGateway : IAsyncLifetime
{
    public GatewayHost Gateway { get; private set; } = null!;

    public async Task InitializeAsync() => Gateway = await GatewayHost.StartAsync(AutoConfig);

    public Task DisposeAsync() => Gateway.DisposeAsync().AsTask();
}

/// <summary>Virtual models through a real gateway: routing headers, logs, streaming, key access, /v1/models.</summary>
public sealed class AutoRoutingEndToEndTests(AutoRoutingGateway fixture) : IClassFixture<AutoRoutingGateway>
{
    private GatewayHost Gateway => fixture.Gateway;

    internal static HttpRequestMessage Post(string body, string? tags = null, string? budget = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (tags is not null)
        {
            request.Headers.Add("x-shepherd-tags", tags);
        }

        if (budget is not null)
        {
            request.Headers.Add("x-shepherd-latency-budget-ms", budget);
        }

        return request;
    }

    public static TheoryData<string, string, string, string?, string?> Rules => RuleTable();

    [Theory]
    [MemberData(nameof(Rules))]
    public async Task Post_EachRulesRequest_ServedByItsModelWithRuleHeader(string rule, string model, string body, string? tags, string? budget)
    {
        using var response = await Gateway.Client.SendAsync(Post(body, tags, budget));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(model, response.Headers.GetValues("x-shepherd-model").Single());
        Assert.Equal(rule, response.Headers.GetValues("x-shepherd-route-rule").Single());
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("chat.completion", json.RootElement.GetProperty("object").GetString());
    }

    [Fact]
    public async Task Post_Routed_DecisionLoggedOnOneInformationLine()
    {
        using var response = await Gateway.Client.SendAsync(Post(UserBody("Weather?", ""","tools":[{"type":"function","function":{"name":"get_weather"}}]""")));
        var requestId = response.Headers.GetValues("x-request-id").Single();

        var line = Assert.Single(Gateway.Logs.Lines, l => l.Contains(requestId + " routed ", StringComparison.Ordinal));
        Assert.StartsWith("Information Shepherd.Requests: ", line, StringComparison.Ordinal);
        Assert.Contains("routed auto -> gpt-4.1 by rule 'tools': long-context: no (prompt ~", line, StringComparison.Ordinal);
        Assert.EndsWith("vision: no (no images); tools: yes (offers 1 tool)", line, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', line);
    }

    [Fact]
    public async Task Post_RoutedStream_StreamsFromTheChosenModel()
    {
        using var response = await Gateway.Client.SendAsync(Post(UserBody("Say hi.", ""","stream":true"""), budget: "100"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("fast", response.Headers.GetValues("x-shepherd-route-rule").Single());
        Assert.Equal("gemini-2.5-flash", response.Headers.GetValues("x-shepherd-model").Single());
        Assert.EndsWith("data: [DONE]\n\n", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Post_DirectModel_NoRuleHeader()
    {
        using var response = await Gateway.Client.SendAsync(Post(UserBody("hi").Replace("\"auto\"", "\"gpt-4.1\"", StringComparison.Ordinal)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("x-shepherd-route-rule"));
    }

    [Theory]
    [InlineData("soon")]
    [InlineData("-1")]
    public async Task Post_MalformedLatencyBudget_400(string budget)
    {
        using var response = await Gateway.Client.SendAsync(Post(UserBody("hi"), budget: budget));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("invalid_header", json.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Models_ListsTheRouterOwnedByShepherd()
    {
        var list = JsonNode.Parse(await Gateway.Client.GetStringAsync("/v1/models"))!["data"]!.AsArray();

        var auto = Assert.Single(list, m => m!["id"]!.GetValue<string>() == "auto")!;
        Assert.Equal("shepherd", auto["owned_by"]!.GetValue<string>());
        Assert.Equal(5, list.Count);
        var single = JsonNode.Parse(await Gateway.Client.GetStringAsync("/v1/models/AUTO"))!;
        Assert.Equal("auto", single["id"]!.GetValue<string>());
    }

    private async Task<HttpClient> KeyClientAsync(params string[] models)
    {
        var created = await Gateway.Client.PostAsJsonAsync("/admin/keys", new { name = "router-key", allowed_models = models });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        return Gateway.CreateClient(JsonNode.Parse(await created.Content.ReadAsStringAsync())!["key"]!.GetValue<string>());
    }

    [Fact]
    public async Task VirtualKey_AllowedOnlyAuto_UsesEveryRouteButNoModelDirectly()
    {
        using var client = await KeyClientAsync("auto");

        using (var routed = await client.SendAsync(Post(UserBody("Tell me about sheep."))))
        {
            Assert.Equal(HttpStatusCode.OK, routed.StatusCode);
            Assert.Equal("deepseek-v3.2", routed.Headers.GetValues("x-shepherd-model").Single());
        }

        using (var tools = await client.SendAsync(Post(UserBody("x", ""","tools":[{"type":"function","function":{"name":"f"}}]"""))))
        {
            Assert.Equal(HttpStatusCode.OK, tools.StatusCode);
            Assert.Equal("gpt-4.1", tools.Headers.GetValues("x-shepherd-model").Single());
        }

        using var direct = await client.SendAsync(Post(UserBody("hi").Replace("\"auto\"", "\"deepseek-v3.2\"", StringComparison.Ordinal)));
        Assert.Equal(HttpStatusCode.Forbidden, direct.StatusCode);
        using (var error = JsonDocument.Parse(await direct.Content.ReadAsStringAsync()))
        {
            Assert.Equal("model_not_allowed", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        var list = JsonNode.Parse(await client.GetStringAsync("/v1/models"))!["data"]!.AsArray();
        Assert.Equal(["auto"], list.Select(m => m!["id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task VirtualKey_AllowedOnlyATarget_RoutesThereButNotElsewhere()
    {
        using var client = await KeyClientAsync("gpt-4.1");

        using (var tools = await client.SendAsync(Post(UserBody("x", ""","tools":[{"type":"function","function":{"name":"f"}}]"""))))
        {
            Assert.Equal(HttpStatusCode.OK, tools.StatusCode);
        }

        using var other = await client.SendAsync(Post(UserBody("Tell me about sheep.")));
        Assert.Equal(HttpStatusCode.Forbidden, other.StatusCode);
        Assert.Equal("default", other.Headers.GetValues("x-shepherd-route-rule").Single());
        var body = await other.Content.ReadAsStringAsync();
        Assert.Contains("'deepseek-v3.2' (chosen by 'auto')", body, StringComparison.Ordinal);
        Assert.DoesNotContain(
            "auto",
            JsonNode.Parse(await client.GetStringAsync("/v1/models"))!["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task VirtualKey_PatternMatchingTheRouter_Accepted()
    {
        using var client = await KeyClientAsync("au*");

        using var response = await client.SendAsync(Post(UserBody("hi")));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
