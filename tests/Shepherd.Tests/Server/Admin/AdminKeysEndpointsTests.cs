namespace Shepherd.Tests.Server.Admin;

using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Shepherd.Testing;

public sealed class AdminKeysEndpointsTests : IAsyncLifetime
{
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync() => _gateway = await GatewayHost.StartAsync("""
        providers:
          - { name: sim, type: simulated }
        models:
          - { name: gpt-4.1, aliases: [ gpt4 ], deployments: [ { provider: sim } ] }
          - { name: claude-sonnet, deployments: [ { provider: sim } ] }
        """);

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Theory]
    [InlineData(null)]
    [InlineData("sk-wrong-master")]
    [InlineData("")]
    public async Task AdminEndpoints_MissingOrWrongMasterKey_401(string? key)
    {
        using var client = _gateway.CreateClient(key);
        foreach (var (method, path) in new[] { ("GET", "/admin/keys"), ("POST", "/admin/keys"), ("GET", "/admin/keys/key_x"), ("PATCH", "/admin/keys/key_x"), ("POST", "/admin/keys/key_x/topup"), ("GET", "/admin/keys/key_x/usage") })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = method == "GET" ? null : Json("""{"name":"x"}""") };
            var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("invalid_api_key", body.RootElement.GetProperty("error").GetProperty("code").GetString());
        }
    }

    [Theory]
    [InlineData("""{"name":"x","daily_budget":-1}""", "daily_budget")]
    [InlineData("""{"name":"x","monthly_budget":"lots"}""", "monthly_budget")]
    [InlineData("""{"name":"x","ip_allowlist":["10.0.0.0/33"]}""", "ip_allowlist[0]")]
    [InlineData("""{"name":"x","ip_allowlist":["not-an-ip"]}""", "ip_allowlist[0]")]
    [InlineData("""{"name":"x","allowed_models":["gtp-4.1"]}""", "allowed_models")]
    [InlineData("""{"name":"x","allowed_models":["mistral-*"]}""", "allowed_models")]
    [InlineData("""{"name":"x","rpm":0}""", "rpm")]
    [InlineData("""{"name":"x","tpm":-5}""", "tpm")]
    [InlineData("""{"name":"x","max_parallel":1.5}""", "max_parallel")]
    [InlineData("""{"name":"x","expires_at":"tomorrow"}""", "expires_at")]
    [InlineData("""{"name":"x","expires_at":"2001-01-01T00:00:00Z"}""", "expires_at")]
    [InlineData("""{"name":"x","budget":5}""", "budget")]
    [InlineData("""{"team":"no name"}""", "name")]
    [InlineData("""{"name":"x","credit_balance":-3}""", "credit_balance")]
    [InlineData("""{"name":"x","metadata":{"a":1}}""", "metadata")]
    public async Task Create_BadInput_400NamingTheField(string body, string field)
    {
        var response = await _gateway.Client.PostAsync("/admin/keys", Json(body));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(field, error.RootElement.GetProperty("error").GetProperty("param").GetString());
        Assert.Contains(field, error.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Create_MalformedJson_400()
    {
        var response = await _gateway.Client.PostAsync("/admin/keys", Json("{nope"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Lifecycle_CreateListShowUpdateTopUpUsageRevoke()
    {
        var created = await _gateway.Client.PostAsync("/admin/keys", Json(
            """{"name":"team key","team":"research","allowed_models":["gpt4"],"rpm":60,"daily_budget":5,"credit_balance":1.5,"metadata":{"owner":"a@b.c"}}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var key = JsonNode.Parse(await created.Content.ReadAsStringAsync())!;
        var id = key["id"]!.GetValue<string>();
        var secret = key["key"]!.GetValue<string>();
        Assert.Matches("^sk-shp-[0-9A-Za-z]{43}$", secret);
        Assert.StartsWith("sk-shp-" + secret[7..11], key["display"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("active", key["status"]!.GetValue<string>());

        // The secret is shown once: never again.
        var shown = await _gateway.Client.GetStringAsync($"/admin/keys/{id}");
        var listed = await _gateway.Client.GetStringAsync("/admin/keys");
        Assert.DoesNotContain(secret, shown, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, listed, StringComparison.Ordinal);
        Assert.Contains(id, listed, StringComparison.Ordinal);

        var updated = JsonNode.Parse(await (await _gateway.Client.PatchAsync($"/admin/keys/{id}", Json("""{"rpm":null,"tpm":1000,"name":"renamed"}"""))).Content.ReadAsStringAsync())!;
        Assert.Null(updated["rpm"]);
        Assert.Equal(1000, updated["tpm"]!.GetValue<int>());
        Assert.Equal("renamed", updated["name"]!.GetValue<string>());
        Assert.Equal("research", updated["team"]!.GetValue<string>());

        var topup = JsonNode.Parse(await (await _gateway.Client.PostAsync($"/admin/keys/{id}/topup", Json("""{"amount":2.25}"""))).Content.ReadAsStringAsync())!;
        Assert.Equal(3.75m, topup["credit_balance"]!.GetValue<decimal>());
        Assert.Equal(HttpStatusCode.BadRequest, (await _gateway.Client.PostAsync($"/admin/keys/{id}/topup", Json("""{"amount":-1}"""))).StatusCode);

        var usage = JsonNode.Parse(await _gateway.Client.GetStringAsync($"/admin/keys/{id}/usage"))!;
        Assert.Equal(3.75m, usage["credit_balance"]!.GetValue<decimal>());
        Assert.Equal(5m, usage["budgets"]!["daily"]!.GetValue<decimal>());

        var revoked = JsonNode.Parse(await (await _gateway.Client.PostAsync($"/admin/keys/{id}/revoke", null)).Content.ReadAsStringAsync())!;
        Assert.Equal("revoked", revoked["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task UnknownKeyId_404()
    {
        Assert.Equal(HttpStatusCode.NotFound, (await _gateway.Client.GetAsync("/admin/keys/key_doesnotexist00")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _gateway.Client.PostAsync("/admin/keys/key_doesnotexist00/topup", Json("""{"amount":1}"""))).StatusCode);
    }

    [Fact]
    public async Task OpenApiDocument_IsServedAndDescribesTheKeyEndpoints()
    {
        var document = JsonNode.Parse(await _gateway.Client.GetStringAsync("/admin/openapi.json"))!;
        Assert.StartsWith("3.", document["openapi"]!.GetValue<string>(), StringComparison.Ordinal);
        var paths = document["paths"]!.AsObject().Select(p => p.Key).ToArray();
        Assert.Contains("/admin/keys", paths);
        Assert.Contains("/admin/keys/{id}/topup", paths);
        Assert.Contains("/admin/keys/{id}/usage", paths);
    }

    [Fact]
    public async Task KeysSurviveARestart_LoadedFromTheDatabase()
    {
        var directory = Directory.CreateTempSubdirectory("shepherd-restart-").FullName;
        try
        {
            var config = $"""
                storage: sqlite:{Path.Combine(directory, "s.db")}
                providers: [ {"{"} name: sim, type: simulated {"}"} ]
                models: [ {"{"} name: m, deployments: [ {"{"} provider: sim {"}"} ] {"}"} ]
                """;
            string secret;
            await using (var first = await GatewayHost.StartAsync(config))
            {
                var response = await first.Client.PostAsJsonAsync("/admin/keys", new { name = "durable", credit_balance = 2m });
                secret = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["key"]!.GetValue<string>();
                using var client = first.CreateClient(secret);
                Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Json("""{"model":"m","messages":[{"role":"user","content":"hi"}]}"""))).StatusCode);
            }

            await using var second = await GatewayHost.StartAsync(config);
            using var again = second.CreateClient(secret);
            Assert.Equal(HttpStatusCode.OK, (await again.PostAsync("/v1/chat/completions", Json("""{"model":"m","messages":[{"role":"user","content":"hi"}]}"""))).StatusCode);
            var key = JsonNode.Parse(await second.Client.GetStringAsync("/admin/keys"))!["data"]![0]!;
            Assert.True(key["spend"]!["total"]!.GetValue<decimal>() == 0m, "the model has no price");
            Assert.Equal(2m, key["credit_balance"]!.GetValue<decimal>());
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }
}
