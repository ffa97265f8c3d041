namespace Shepherd.Testing;

using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;

/// <summary>
/// A long-running <c>shepherd serve</c> child process (the built executable, as <see cref="ShepherdExecutable"/> runs
/// it) on a free loopback port, started once it answers <c>/health/ready</c>. Its output is kept for diagnostics.
/// </summary>
public sealed class ShepherdProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ShepherdProcess(Process process, string baseUrl)
    {
        _process = process;
        BaseUrl = baseUrl;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string BaseUrl { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Everything the process wrote so far (stdout and stderr).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts <c>shepherd serve --config CONFIG --urls http://127.0.0.1:PORT</c> and waits until it is ready.</summary>
    /// <param name="workingDirectory">The process's working directory (its default usage spill file goes there).</param>
    public static async Task<ShepherdProcess> StartAsync(string configPath, string workingDirectory, IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        var port = RedisServer.FreePort();
        var url = $"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}";
        var directory = AppContext.BaseDirectory;
        var apphost = Path.Combine(directory, OperatingSystem.IsWindows() ? "shepherd.exe" : "shepherd");
        var start = File.Exists(apphost)
            ? new ProcessStartInfo(apphost)
            : new ProcessStartInfo("dotnet") { ArgumentList = { Path.Combine(directory, "shepherd.dll") } };
        foreach (var arg in new[] { "serve", "--config", configPath, "--urls", url })
        {
            start.ArgumentList.Add(arg);
        }

        start.WorkingDirectory = workingDirectory;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        start.Environment.Remove("SHEPHERD_CONFIG");
        start.Environment.Remove("SHEPHERD_MASTER_KEY");
        start.Environment["NO_COLOR"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var shepherd = new ShepherdProcess(Process.Start(start)!, url);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (DateTime.UtcNow < deadline)
        {
            if (shepherd.HasExited)
            {
                throw new InvalidOperationException($"shepherd serve exited ({shepherd._process.ExitCode}):\n{shepherd.Output}");
            }

            try
            {
                if ((await client.GetAsync(url + "/health/ready")).IsSuccessStatusCode)
                {
                    return shepherd;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }

            await Task.Delay(50);
        }

        await shepherd.DisposeAsync();
        throw new InvalidOperationException($"shepherd serve did not become ready:\n{shepherd.Output}");
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

    /// <summary>SIGKILL: the process dies at once, with no shutdown, flush or drain.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            if (_output.Length < 1_000_000)
            {
                _output.AppendLine(line);
            }
        }
    }
}
