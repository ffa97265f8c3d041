namespace Shepherd.Testing;

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;

/// <summary>
/// <c>shepherd serve</c> as a real child process on a free loopback port, for tests that must crash it (SIGKILL) and
/// start it again on the same database.
/// </summary>
public sealed partial class ShepherdProcess : IAsyncDisposable
{
    private readonly Process _process;

    private ShepherdProcess(Process process)
    {
        _process = process;
    }

    public string BaseUrl { get; private set; } = "";

    /// <summary>Every line the process wrote (stdout and stderr).</summary>
    public ConcurrentQueue<string> Output { get; } = new();

    public bool HasExited => _process.HasExited;

    /// <summary>Starts <c>shepherd serve --config FILE --urls http://127.0.0.1:0</c> and waits until it listens.</summary>
    public static async Task<ShepherdProcess> StartAsync(string configPath, IReadOnlyDictionary<string, string>? environment = null, int timeoutMs = 30_000)
    {
        var directory = AppContext.BaseDirectory;
        var apphost = Path.Combine(directory, OperatingSystem.IsWindows() ? "shepherd.exe" : "shepherd");
        var start = File.Exists(apphost)
            ? new ProcessStartInfo(apphost)
            : new ProcessStartInfo("dotnet") { ArgumentList = { Path.Combine(directory, "shepherd.dll") } };
        foreach (var arg in new[] { "serve", "--config", configPath, "--urls", "http://127.0.0.1:0" })
        {
            start.ArgumentList.Add(arg);
        }

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

        var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var owner = new ShepherdProcess(process);
        void OnLine(object sender, DataReceivedEventArgs e)
        {
            if (e.Data is null)
            {
                return;
            }

            owner.Output.Enqueue(e.Data);
            if (Listening().Match(e.Data) is { Success: true } match)
            {
                listening.TrySetResult(match.Groups["url"].Value);
            }
        }

        process.OutputDataReceived += OnLine;
        process.ErrorDataReceived += OnLine;
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException("shepherd exited before listening:\n" + string.Join("\n", owner.Output)));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            owner.BaseUrl = await listening.Task.WaitAsync(TimeSpan.FromMilliseconds(timeoutMs));
        }
        catch
        {
            await owner.DisposeAsync();
            throw;
        }

        return owner;
    }

    /// <summary>SIGKILL (TerminateProcess on Windows): no shutdown code runs.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException)
        {
            // Never started.
        }

        _process.Dispose();
    }

    [GeneratedRegex(@"Now listening on: (?<url>https?://\S+)")]
    private static partial Regex Listening();
}
