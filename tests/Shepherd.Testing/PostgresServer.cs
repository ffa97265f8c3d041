namespace Shepherd.Testing;

using System.Diagnostics;
using System.Globalization;
using Npgsql;

/// <summary>
/// A real PostgreSQL server for tests: the one named by <c>SHEPHERD_TEST_POSTGRES</c> (an Npgsql connection string to
/// the <c>postgres</c> database, started by scripts/test.sh), else ONE private server per test run (initdb in a
/// temporary folder, a free loopback port, stopped when the test process exits). Each test gets its own database.
/// </summary>
public sealed class PostgresServer
{
    private static readonly SemaphoreSlim Starting = new(1, 1);
    private static PostgresServer? _shared;

    private PostgresServer(string adminConnectionString)
    {
        AdminConnectionString = adminConnectionString;
    }

    /// <summary>A connection string to the server's <c>postgres</c> database, as a superuser.</summary>
    public string AdminConnectionString { get; }

    public static async Task<PostgresServer> StartAsync()
    {
        await Starting.WaitAsync();
        try
        {
            if (_shared is not null)
            {
                return _shared;
            }

            var configured = Environment.GetEnvironmentVariable("SHEPHERD_TEST_POSTGRES");
            _shared = new PostgresServer(string.IsNullOrWhiteSpace(configured) ? await StartPrivateAsync() : configured);
            return _shared;
        }
        finally
        {
            Starting.Release();
        }
    }

    /// <summary>Creates an empty database and returns a connection string to it.</summary>
    public async Task<TestDatabase> CreateDatabaseAsync()
    {
        var name = "shp_" + Guid.NewGuid().ToString("N")[..16];
        await using (var connection = new NpgsqlConnection(AdminConnectionString))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await create.ExecuteNonQueryAsync();
        }

        var builder = new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name };
        return new TestDatabase(this, name, builder.ConnectionString);
    }

    internal async Task DropAsync(string name)
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
    }

    private static async Task<string> StartPrivateAsync()
    {
        var initdb = FindTool("initdb") ?? throw new InvalidOperationException("PostgreSQL is not installed: run ./scripts/test.sh (it installs it) or apt-get install postgresql.");
        var pgCtl = FindTool("pg_ctl")!;
        var directory = Directory.CreateTempSubdirectory("shepherd-pg-").FullName;
        var data = Path.Combine(directory, "data");
        Directory.CreateDirectory(data);
        var asRoot = Environment.UserName == "root";
        if (asRoot)
        {
            // PostgreSQL refuses to run as root: run it as the postgres user the package creates.
            await RunAsync("chown", "-R", "postgres", directory);
            await RunAsync("chmod", "755", directory);
        }

        var port = RedisServer.FreePort();
        await RunAsync(asRoot, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8");
        await RunAsync(asRoot, pgCtl, "-D", data, "-l", Path.Combine(directory, "log"), "-w", "-o",
            $"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300", "start");
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                RunAsync(asRoot, pgCtl, "-D", data, "-m", "immediate", "stop").GetAwaiter().GetResult();
            }
            catch (InvalidOperationException)
            {
            }

            for (var attempt = 0; attempt < 5 && Directory.Exists(directory); attempt++)
            {
                try
                {
                    Directory.Delete(directory, recursive: true);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    Thread.Sleep(100);
                }
            }
        };
        return $"Host=127.0.0.1;Port={port.ToString(CultureInfo.InvariantCulture)};Username=postgres;Database=postgres";
    }

    private static string? FindTool(string name)
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            var candidate = Path.Combine(directory, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin", name)).Where(File.Exists).OrderDescending().FirstOrDefault()
            : null;
    }

    private static Task RunAsync(string tool, params string[] args) => RunAsync(false, tool, args);

    private static async Task RunAsync(bool asPostgres, string tool, params string[] args)
    {
        var start = asPostgres ? new ProcessStartInfo("runuser") { ArgumentList = { "-u", "postgres", "--", tool } } : new ProcessStartInfo(tool);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{tool} failed ({process.ExitCode}): {await error}{await output}");
        }
    }
}

/// <summary>One test's own database; dropped on dispose.</summary>
public sealed class TestDatabase(PostgresServer server, string name, string connectionString) : IAsyncDisposable
{
    public string Name { get; } = name;

    /// <summary>An Npgsql connection string to this database (usable as <c>storage:</c>).</summary>
    public string ConnectionString { get; } = connectionString;

    public ValueTask DisposeAsync() => new(server.DropAsync(Name));
}
