namespace Shepherd.Testing;

using System.Net.Http.Headers;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Shepherd.Configuration;
using Shepherd.Server.Hosting;

/// <summary>A real gateway (Kestrel on 127.0.0.1:0) built from a YAML configuration, for end-to-end tests.</summary>
public sealed class GatewayHost : IAsyncDisposable
{
    public const string TestMasterKey = "sk-test-master-0123456789";

    private readonly WebApplication _app;

    private readonly string? _directory;

    private GatewayHost(WebApplication app, string baseUrl, LogCapture logs, string? directory)
    {
        _app = app;
        _directory = directory;
        BaseUrl = baseUrl;
        Logs = logs;
        Client = CreateClient(TestMasterKey);
    }

    public string BaseUrl { get; }

    /// <summary>The OpenAI base URL (<c>…/v1</c>) for SDK clients.</summary>
    public Uri OpenAIEndpoint => new(BaseUrl + "/v1");

    /// <summary>A client that sends the master key.</summary>
    public HttpClient Client { get; }

    public LogCapture Logs { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>The gateway's SQLite file (a fresh temporary one unless the YAML names one).</summary>
    public string? DatabasePath { get; private init; }

    /// <summary>
    /// Starts a gateway. The YAML needs no <c>master_key</c> (the test key is added) and no <c>storage</c>
    /// (a fresh SQLite file in a temporary folder is used and deleted afterwards). Without a <c>routing</c> section,
    /// <c>routing.max_attempts</c> is 1, so a test of one upstream sees each failure as it is.
    /// </summary>
    public static async Task<GatewayHost> StartAsync(string yaml, TimeProvider? time = null, Func<GatewayHostOptions, GatewayHostOptions>? configure = null)
    {
        if (!yaml.Contains("master_key:", StringComparison.Ordinal))
        {
            yaml = $"master_key: {TestMasterKey}\n{yaml}";
        }

        // Tests of one upstream want to see each failure as it is: no retries unless the test configures routing.
        if (!yaml.Contains("routing:", StringComparison.Ordinal))
        {
            yaml = $"routing: {{ max_attempts: 1 }}\n{yaml}";
        }

        string? directory = null;
        if (!yaml.Contains("storage:", StringComparison.Ordinal))
        {
            directory = Directory.CreateTempSubdirectory("shepherd-test-").FullName;
            yaml = $"storage: sqlite:{Path.Combine(directory, "shepherd.db")}\n{yaml}";
        }

        var loaded = ConfigLoader.LoadYaml(yaml, "test", _ => null);
        if (!loaded.IsValid)
        {
            throw new InvalidOperationException("Invalid test configuration:\n" + string.Join("\n", loaded.Errors));
        }

        var logs = new LogCapture();
        var options = new GatewayHostOptions
        {
            Urls = "http://127.0.0.1:0",
            TimeProvider = time ?? TimeProvider.System,
            ConfigureLogging = logging => logging.AddProvider(logs),
            Environment = _ => null,
        };
        options = configure?.Invoke(options) ?? options;
        var app = await GatewayApp.BuildAsync(loaded.Config!, options);
        await app.StartAsync();
        var address = GatewayApp.BoundAddresses(app).First();
        return new GatewayHost(app, address, logs, directory) { DatabasePath = Storage.Sqlite.SqliteDatabase.PathFromUrl(loaded.Config!.Storage) };
    }

    public HttpClient CreateClient(string? key)
    {
        var client = new HttpClient { BaseAddress = new Uri(BaseUrl), Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return client;
    }

    /// <summary>Stops the gateway the way SIGTERM does: no new connections, in-flight requests and streams may finish.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _app.StopAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
        {
            await _app.StopAsync(stop.Token);
        }

        await _app.DisposeAsync();
        if (_directory is not null)
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
                // Best effort: a temp folder left behind is harmless.
            }
        }
    }
}
