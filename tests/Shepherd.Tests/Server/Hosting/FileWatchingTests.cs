namespace Shepherd.Tests.Server.Hosting;

using Shepherd.Testing;

/// <summary>
/// <c>shepherd serve</c> watches no files: the host's default reload-on-change for <c>appsettings*.json</c> watched
/// the working directory recursively — started from <c>/</c>, one inotify watch per directory of the file system.
/// </summary>
public sealed class FileWatchingTests
{
    [Fact]
    public async Task Serve_FromADirectoryWithManySubdirectories_SetsNoInotifyWatch()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // inotify and /proc are Linux's; CI runs there
        }

        var directory = Directory.CreateTempSubdirectory("shepherd-watch-").FullName;
        try
        {
            for (var i = 0; i < 200; i++)
            {
                Directory.CreateDirectory(Path.Combine(directory, "tree", $"d{i}", "sub"));
            }

            var configPath = Path.Combine(directory, "shepherd.yaml");
            await File.WriteAllTextAsync(configPath, $"""
                master_key: {GatewayHost.TestMasterKey}
                storage: sqlite:{Path.Combine(directory, "shepherd.db")}
                providers:
                  - {"{"} name: sim, type: simulated {"}"}
                models:
                  - name: m
                    deployments: [ {"{"} provider: sim {"}"} ]
                """);

            await using var shepherd = await ShepherdProcess.StartAsync(configPath, directory);

            Assert.Equal(0, InotifyWatches(shepherd.ProcessId));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>The inotify watches a process holds, over all its inotify descriptors (from <c>/proc/PID/fdinfo</c>).</summary>
    private static int InotifyWatches(int pid)
    {
        var watches = 0;
        foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
        {
            var target = new FileInfo(fd).LinkTarget;
            if (target is not null && target.Contains("inotify", StringComparison.Ordinal))
            {
                watches += File.ReadLines($"/proc/{pid}/fdinfo/{Path.GetFileName(fd)}").Count(line => line.StartsWith("inotify ", StringComparison.Ordinal));
            }
        }

        return watches;
    }
}
