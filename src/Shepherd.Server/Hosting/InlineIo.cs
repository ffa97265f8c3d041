namespace Shepherd.Server.Hosting;

using Shepherd.Configuration;

/// <summary>
/// <c>server.inline_io</c>, the part that is process-wide: .NET runs socket completions inline on its event threads
/// (one per core instead of one per ~30 cores) only when <c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1</c> is set
/// before the process's first socket operation. <c>shepherd serve</c> applies it before it opens anything; Kestrel's
/// half (inline scheduling of the client connections) is set where the host is built.
/// </summary>
/// <remarks>An explicit setting of the variable in the environment wins over the config.</remarks>
public static class InlineIo
{
    public const string SocketsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    public static void Apply(ServerConfig server)
    {
        if (SocketsSetting(server, Environment.GetEnvironmentVariable(SocketsVariable)) is { } value)
        {
            Environment.SetEnvironmentVariable(SocketsVariable, value);
        }
    }

    /// <summary>What to set the variable to, given its current value; null to leave it.</summary>
    public static string? SocketsSetting(ServerConfig server, string? current) => server.InlineIo && current is null ? "1" : null;
}
