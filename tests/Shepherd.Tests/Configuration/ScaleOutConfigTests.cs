namespace Shepherd.Tests.Configuration;

using Shepherd.Configuration;
using Shepherd.Storage.Redis;
using static Shepherd.Tests.Configuration.ConfigTestHelpers;

/// <summary><c>storage</c> (SQLite or PostgreSQL) and <c>state</c> (in memory or Redis): what is accepted, what is refused and how.</summary>
public sealed class ScaleOutConfigTests
{
    [Theory]
    [InlineData("storage: sqlite:./shepherd.db")]
    [InlineData("storage: postgres://shepherd:secret@db:5432/shepherd")]
    [InlineData("storage: postgresql://db/shepherd?sslmode=require")]
    [InlineData("storage: \"Host=db;Port=5432;Username=shepherd;Password=secret;Database=shepherd\"")]
    [InlineData("state: { redis: \"redis://cache:6379\" }")]
    [InlineData("state: { redis: \"rediss://:secret@cache:6380/2\", on_failure: closed, prefix: gw-eu }")]
    [InlineData("state: { redis: \"cache:6379,password=secret,ssl=true\" }")]
    public void Validate_ScaleOutSettings_Accepted(string line)
    {
        AssertValid(Minimal + "\n" + line);
    }

    [Theory]
    [InlineData("storage: mysql://db/shepherd", "storage: 'mysql://db/shepherd' is not a storage URL (expected sqlite:PATH, postgres://user:password@host:port/database or an Npgsql connection string)")]
    [InlineData("storage: mysql://user:secret@db/shepherd", "storage: not a storage URL (expected sqlite:PATH, postgres://user:password@host:port/database or an Npgsql connection string)")]
    [InlineData("storage: \"sqlite:\"", "storage: 'sqlite:' is not a storage URL (expected sqlite:PATH (e.g. sqlite:./shepherd.db))")]
    [InlineData("storage: postgres://user:secret@db", "storage: not a usable PostgreSQL setting: expected postgres://user:password@host:port/database")]
    [InlineData("storage: \"Username=u;Password=secret;Database=d\"", "storage: not a usable PostgreSQL setting: an Npgsql connection string needs Host=… (e.g. Host=db;Username=shepherd;Password=…;Database=shepherd)")]
    [InlineData("state: { redis: \"redis://cache:6379\", on_failure: sometimes }", "state.on_failure: 'sometimes' is not one of open, closed")]
    [InlineData("state: { prefix: \"a b\" }", "state.prefix: must be 1 to 64 characters without white space or braces")]
    [InlineData("state: { redis: \"redis://cache:6379/zero\" }", "state.redis: 'redis://cache:6379/zero' is not a Redis URL (expected redis://host:port or redis://user:password@host:port/db)")]
    [InlineData("state: { redis: \"http://cache:6379\" }", "state.redis: expected redis://host:port, rediss://host:port or a StackExchange.Redis configuration string (host:port,password=…)")]
    [InlineData("state: { redis: \"\" }", "state.redis: must not be empty (leave it out for in-memory state)")]
    public void Validate_ScaleOutMistakes_ReportedWithoutSecrets(string line, string expected)
    {
        AssertErrors(Minimal + "\n" + line, expected);
        Assert.DoesNotContain("secret", expected, StringComparison.Ordinal);
    }

    [Fact]
    public void Defaults_EmbeddedStorageAndInMemoryState()
    {
        var config = AssertValid(Minimal);
        Assert.Equal("sqlite:./shepherd.db", config.Storage);
        Assert.Null(config.State.Redis);
        Assert.True(config.State.FailOpen);
        Assert.Equal("shp", config.State.Prefix);
    }

    [Fact]
    public void RedisOptions_Url_EndpointUserPasswordTlsDatabaseAndFastFailover()
    {
        var options = RedisState.Options("rediss://gw:p%40ss@cache.internal:6380/3");
        Assert.Equal("cache.internal:6380", options.EndPoints.Single().ToString()!.Replace("Unspecified/", "", StringComparison.Ordinal));
        Assert.Equal(("gw", "p@ss", true, 3), (options.User, options.Password, options.Ssl, options.DefaultDatabase));
        Assert.False(options.AbortOnConnectFail);
        Assert.Equal((2000, 1000, 1000), (options.ConnectTimeout, options.SyncTimeout, options.AsyncTimeout));

        var legacy = RedisState.Options("redis://only-a-password@cache");
        Assert.Equal(("only-a-password", (string?)null), (legacy.Password, legacy.User));

        var native = RedisState.Options("cache:6379,password=x,syncTimeout=5000");
        Assert.Equal((5000, 1000), (native.SyncTimeout, native.AsyncTimeout));
    }
}
