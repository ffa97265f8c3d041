namespace Shepherd.Configuration;

using System.Text;

/// <summary>Expands <c>${VAR}</c> and <c>${VAR:-default}</c> in configuration values; <c>$${</c> is a literal <c>${</c>.</summary>
public sealed class EnvironmentInterpolator
{
    private readonly Func<string, string?> _lookup;

    public EnvironmentInterpolator(Func<string, string?>? lookup = null)
    {
        _lookup = lookup ?? Environment.GetEnvironmentVariable;
    }

    /// <summary>Expands <paramref name="value"/>.</summary>
    /// <param name="value">The raw text.</param>
    /// <param name="unset">Receives the names of referenced variables that are unset and have no default.</param>
    /// <param name="error">Receives a description when the syntax is broken (an unclosed <c>${</c>).</param>
    public string Expand(string value, ICollection<string> unset, out string? error)
    {
        error = null;
        if (!value.Contains('$', StringComparison.Ordinal))
        {
            return value;
        }

        var sb = new StringBuilder(value.Length);
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c != '$' || i + 1 >= value.Length)
            {
                sb.Append(c);
                continue;
            }

            if (value[i + 1] == '$' && i + 2 < value.Length && value[i + 2] == '{')
            {
                sb.Append("${");
                i += 2;
                continue;
            }

            if (value[i + 1] != '{')
            {
                sb.Append(c);
                continue;
            }

            var close = value.IndexOf('}', i + 2);
            if (close < 0)
            {
                error = "unclosed '${' in value";
                return value;
            }

            var expression = value.AsSpan(i + 2, close - i - 2);
            var separator = expression.IndexOf(":-", StringComparison.Ordinal);
            var name = (separator >= 0 ? expression[..separator] : expression).Trim().ToString();
            if (name.Length == 0 || !IsValidName(name))
            {
                error = $"'${{{expression}}}' is not a valid variable reference";
                return value;
            }

            var resolved = _lookup(name);
            if (string.IsNullOrEmpty(resolved))
            {
                if (separator >= 0)
                {
                    resolved = expression[(separator + 2)..].ToString();
                }
                else
                {
                    unset.Add(name);
                    resolved = string.Empty;
                }
            }

            sb.Append(resolved);
            i = close;
        }

        return sb.ToString();
    }

    private static bool IsValidName(string name)
    {
        foreach (var ch in name)
        {
            if (!(char.IsAsciiLetterOrDigit(ch) || ch == '_'))
            {
                return false;
            }
        }

        return !char.IsAsciiDigit(name[0]);
    }
}
