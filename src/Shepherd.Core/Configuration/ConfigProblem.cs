namespace Shepherd.Configuration;

/// <summary>One thing wrong (or doubtful) in a configuration, with the key path it concerns.</summary>
public sealed record ConfigProblem(string Path, string Message, bool IsWarning = false)
{
    public override string ToString() => string.IsNullOrEmpty(Path) ? Message : $"{Path}: {Message}";
}
