namespace Shepherd.Tests.Cli;

using System.Text.Json.Nodes;
using Shepherd.Testing;

/// <summary><c>shepherd keys …</c> as a real child process against a running gateway.</summary>
public sealed class KeysCommandTests
{
    [Fact]
    public async Task Keys_CreateListShowUpdateTopUpRevoke_AgainstRunningGateway()
    {
        await using var gateway = await GatewayHost.StartAsync("""
            providers: [ { name: sim, type: simulated } ]
            models: [ { name: demo, price: { input: 1, output: 1 }, deployments: [ { provider: sim } ] } ]
            """);
        var env = new Dictionary<string, string> { ["SHEPHERD_MASTER_KEY"] = GatewayHost.TestMasterKey };

        var (code, output, error) = await ShepherdExecutable.RunAsync(env, "keys", "create", "--url", gateway.BaseUrl, "--name", "cli key", "--team", "ops", "--rpm", "30", "--credit", "5", "--json");
        Assert.True(code == 0, error);
        var created = JsonNode.Parse(output)!;
        var id = created["id"]!.GetValue<string>();
        Assert.StartsWith("sk-shp-", created["key"]!.GetValue<string>(), StringComparison.Ordinal);

        (code, output, error) = await ShepherdExecutable.RunAsync(env, "keys", "list", "--url", gateway.BaseUrl);
        Assert.True(code == 0, error);
        Assert.Contains(id, output, StringComparison.Ordinal);
        Assert.Contains("cli key", output, StringComparison.Ordinal);

        (code, output, error) = await ShepherdExecutable.RunAsync(env, "keys", "update", id, "--url", gateway.BaseUrl, "--rpm", "none", "--daily-budget", "2.5", "--json");
        Assert.True(code == 0, error);
        var updated = JsonNode.Parse(output)!;
        Assert.Null(updated["rpm"]);
        Assert.Equal(2.5m, updated["daily_budget"]!.GetValue<decimal>());

        (code, output, error) = await ShepherdExecutable.RunAsync(env, "keys", "topup", id, "1.25", "--url", gateway.BaseUrl, "--json");
        Assert.True(code == 0, error);
        Assert.Equal(6.25m, JsonNode.Parse(output)!["credit_balance"]!.GetValue<decimal>());

        (code, output, error) = await ShepherdExecutable.RunAsync(env, "keys", "show", id, "--url", gateway.BaseUrl);
        Assert.True(code == 0, error);
        Assert.Contains("6.25", output, StringComparison.Ordinal);

        (code, output, error) = await ShepherdExecutable.RunAsync(env, "keys", "revoke", id, "--url", gateway.BaseUrl, "--json");
        Assert.True(code == 0, error);
        Assert.Equal("revoked", JsonNode.Parse(output)!["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task Keys_WrongMasterKeyOrBadInput_ExitOneWithTheApiMessage()
    {
        await using var gateway = await GatewayHost.StartAsync("""
            providers: [ { name: sim, type: simulated } ]
            models: [ { name: demo, deployments: [ { provider: sim } ] } ]
            """);
        var (code, _, error) = await ShepherdExecutable.RunAsync(new Dictionary<string, string> { ["SHEPHERD_MASTER_KEY"] = "wrong" }, "keys", "list", "--url", gateway.BaseUrl);
        Assert.Equal(1, code);
        Assert.Contains("401", error, StringComparison.Ordinal);

        (code, _, error) = await ShepherdExecutable.RunAsync(new Dictionary<string, string> { ["SHEPHERD_MASTER_KEY"] = GatewayHost.TestMasterKey }, "keys", "create", "--url", gateway.BaseUrl, "--name", "x", "--ip", "999.1.1.1");
        Assert.Equal(1, code);
        Assert.Contains("ip_allowlist", error, StringComparison.Ordinal);
    }
}
