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
