namespace Shepherd.Testing;

using System.Diagnostics;
using System.Net.Sockets;

/// <summary>
/// A real Redis server for tests: the one named by <c>SHEPHERD_TEST_REDIS</c> (host:port, started by scripts/test.sh),
/// else a private <c>redis-server</c> started on a free loopback port in a temporary folder and stopped on dispose.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private readonly Process? _process;
    private readonly string? _directory;

    private RedisServer(string endpoint, Process? process, string? directory)
    {
        Endpoint = endpoint;
        _process = process;
        _directory = directory;
    }

    /// <summary><c>127.0.0.1:port</c>.</summary>
    public string Endpoint { get; }

    public static async Task<RedisServer> StartAsync()
    {
        var shared = Environment.GetEnvironmentVariable("SHEPHERD_TEST_REDIS");
        if (!string.IsNullOrWhiteSpace(shared))
        {
            return new RedisServer(shared, null, null);
        }

        return await StartPrivateAsync();
    }

    /// <summary>A private server this test may stop and start again (on the same <paramref name="port"/>).</summary>
    public static async Task<RedisServer> StartPrivateAsync(int? port = null)
    {
        var chosen = port ?? FreePort();
        return await StartProcessAsync(chosen);
    }

    /// <summary>
    /// A client connected to this server, with the gateway's options but generous timeouts: the gateway's 1 s
    /// command timeouts (and 2 s connect timeout) are meant to fail over fast in production; in a suite that runs
    /// in parallel on few cores they would make tests about shared state fail on a stall instead.
    /// </summary>
    /// <remarks>Returns only once connected: with <c>AbortOnConnectFail = false</c> a connect can return before it is.</remarks>
    public async Task<StackExchange.Redis.ConnectionMultiplexer> ConnectAsync()
    {
        var options = Shepherd.Storage.Redis.RedisState.Options(Endpoint);
        options.ConnectTimeout = options.SyncTimeout = options.AsyncTimeout = 30_000;
        var connection = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(options);
        var waited = Stopwatch.StartNew();
        while (!connection.IsConnected)
        {
            if (waited.Elapsed > TimeSpan.FromSeconds(30))
            {
                await connection.DisposeAsync();
                throw new InvalidOperationException($"could not connect to Redis at {Endpoint} within 30 s");
            }

            await Task.Delay(20);
        }

        return connection;
    }

    /// <summary>The port of <see cref="Endpoint"/>.</summary>
    public int Port => int.Parse(Endpoint[(Endpoint.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture);

    private static async Task<RedisServer> StartProcessAsync(int port)
    {
        var directory = Directory.CreateTempSubdirectory("shepherd-redis-").FullName;
        var start = new ProcessStartInfo("redis-server")
        {
            ArgumentList = { "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException("redis-server is not installed: run ./scripts/test.sh (it installs it) or apt-get install redis-server.", ex);
        }

        process.OutputDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync("127.0.0.1", port);
                return new RedisServer($"127.0.0.1:{port}", process, directory);
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }

        process.Kill();
        throw new InvalidOperationException("redis-server did not start.");
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process?.Dispose();
        if (_directory is not null)
        {
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
