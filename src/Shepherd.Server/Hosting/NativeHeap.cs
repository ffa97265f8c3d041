namespace Shepherd.Server.Hosting;

using System.Runtime.InteropServices;

/// <summary>
/// Gives the C allocator's free memory back to the system (glibc's <c>malloc_trim</c>), for memory measurements: after
/// a compacting collection the managed heap holds only what is live, but glibc keeps what native code freed (the JIT's
/// scratch memory above all, malloc'd on its background thread) in its arenas, where it would count as the process's
/// own. A no-op elsewhere than glibc.
/// </summary>
internal static class NativeHeap
{
    public static void Trim()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            _ = MallocTrim(0);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc (musl has no malloc_trim): nothing to trim.
        }
    }

    // DllImport, not LibraryImport: the signature is blittable, and LibraryImport would need unsafe code in this project.
#pragma warning disable SYSLIB1054
    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);
#pragma warning restore SYSLIB1054
}
