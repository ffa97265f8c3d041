namespace Shepherd.Configuration;

using System.Collections;
using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;
using System.Text;

/// <summary>
/// Binds a YAML tree to the configuration records, collecting every problem with its key path instead of
/// stopping at the first: unknown keys (with a suggestion), wrong types, malformed values.
/// </summary>
/// <remarks>Keys are the snake_case forms of the property names. Runs once at start-up, so reflection is fine here.</remarks>
public sealed class ConfigBinder
{
    /// <summary>Most values one file may bind, aliases counted each time they are used.</summary>
    /// <remarks>Aliases share nodes, so a few lines of anchors can describe billions of values ("billion laughs").</remarks>
    public const int MaxValues = 100_000;

    private static readonly ConcurrentDictionary<Type, Dictionary<string, PropertyInfo>> PropertyMaps = new();

    private readonly EnvironmentInterpolator _interpolator;
    private readonly List<ConfigProblem> _problems;
    private readonly HashSet<string> _unset = new(StringComparer.Ordinal);
    private int _budget = MaxValues;

    public ConfigBinder(EnvironmentInterpolator interpolator, List<ConfigProblem> problems)
    {
        _interpolator = interpolator;
        _problems = problems;
    }

    /// <summary>Environment variables referenced without a default that were unset.</summary>
    public IReadOnlyCollection<string> UnsetVariables => _unset;

    internal T Bind<T>(ConfigNode? root)
        where T : new()
    {
        if (root is null || IsNull(root))
        {
            return new T();
        }

        return (T?)BindValue(root, typeof(T), string.Empty) ?? new T();
    }

    /// <summary>The snake_case key of a property name (<c>BaseUrl</c> → <c>base_url</c>).</summary>
    public static string ToSnakeCase(string name)
    {
        var sb = new StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (char.IsUpper(c))
            {
                if (i > 0 && (char.IsLower(name[i - 1]) || char.IsDigit(name[i - 1])))
                {
                    sb.Append('_');
                }

                sb.Append(char.ToLowerInvariant(c));
            }
            else
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }

    /// <summary>The keys a record type accepts, for documentation and suggestions.</summary>
    public static IReadOnlyCollection<string> KeysOf(Type type) => PropertiesOf(type).Keys;

    private static Dictionary<string, PropertyInfo> PropertiesOf(Type type) =>
        PropertyMaps.GetOrAdd(type, static t => t
            .GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.GetIndexParameters().Length == 0)
            .ToDictionary(p => ToSnakeCase(p.Name), StringComparer.Ordinal));

    private object? BindValue(ConfigNode node, Type type, string path)
    {
        var underlying = Nullable.GetUnderlyingType(type);
        if (IsNull(node))
        {
            return null;
        }

        if (--_budget < 0)
        {
            if (_budget == -1)
            {
                Problem(path, $"the configuration holds more than {MaxValues} values (aliases counted each time they are used)");
            }

            return null;
        }

        var target = underlying ?? type;
        if (target == typeof(string) || target.IsPrimitive || target == typeof(decimal))
        {
            return BindScalar(node, target, path);
        }

        if (target.IsGenericType && target.GetGenericTypeDefinition() == typeof(List<>))
        {
            return BindList(node, target, path);
        }

        if (target.IsGenericType && target.GetGenericTypeDefinition() == typeof(Dictionary<,>))
        {
            return BindDictionary(node, target, path);
        }

        return BindObject(node, target, path);
    }

    private object? BindObject(ConfigNode node, Type type, string path)
    {
        if (node is not ConfigMapping mapping)
        {
            Problem(path, $"expected a mapping (key: value pairs), but got {Describe(node, path)}");
            return null;
        }

        var instance = Activator.CreateInstance(type)!;
        var properties = PropertiesOf(type);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (keyNode, valueNode) in mapping.Pairs)
        {
            if (KeyOf(keyNode, path) is not { } key)
            {
                continue;
            }

            var childPath = Join(path, key);
            if (!seen.Add(key))
            {
                Problem(childPath, "duplicate key");
                continue;
            }

            if (!properties.TryGetValue(key, out var property))
            {
                var suggestion = Suggest(key, properties.Keys) ?? NestedHome(key, properties);
                Problem(childPath, suggestion is null ? "unknown key" : $"unknown key (did you mean '{suggestion}'?)");
                continue;
            }

            var value = BindValue(valueNode, property.PropertyType, childPath);
            if (value is not null)
            {
                property.SetValue(instance, value);
            }
        }

        return instance;
    }

    private object? BindList(ConfigNode node, Type listType, string path)
    {
        if (node is not ConfigSequence sequence)
        {
            Problem(path, $"expected a list, but got {Describe(node, path)}");
            return null;
        }

        var elementType = listType.GetGenericArguments()[0];
        var list = (IList)Activator.CreateInstance(listType)!;
        var index = 0;
        foreach (var child in sequence.Items)
        {
            var value = BindValue(child, elementType, $"{path}[{index}]");

            // An interpolated entry that came out empty ("${OLD_SECRET:-}") is dropped, so optional entries work.
            if (value is not null && !(value is string s && s.Length == 0))
            {
                list.Add(value);
            }

            index++;
        }

        return list;
    }

    private object? BindDictionary(ConfigNode node, Type dictionaryType, string path)
    {
        if (node is not ConfigMapping mapping)
        {
            Problem(path, $"expected a mapping, but got {Describe(node, path)}");
            return null;
        }

        var valueType = dictionaryType.GetGenericArguments()[1];
        var dictionary = (IDictionary)Activator.CreateInstance(dictionaryType)!;
        foreach (var (keyNode, valueNode) in mapping.Pairs)
        {
            if (KeyOf(keyNode, path) is not { } key)
            {
                continue;
            }

            if (dictionary.Contains(key))
            {
                Problem(Join(path, key), "duplicate key");
                continue;
            }

            var value = BindValue(valueNode, valueType, Join(path, key));
            if (value is not null)
            {
                dictionary[key] = value;
            }
        }

        return dictionary;
    }

    /// <summary>The text of a mapping key; keys must be plain scalars (a list or mapping as a key is reported).</summary>
    private string? KeyOf(ConfigNode keyNode, string path)
    {
        if (keyNode is ConfigScalar scalar)
        {
            return scalar.Value;
        }

        Problem(path, $"a key must be text, but got {Describe(keyNode, path)}");
        return null;
    }

    private object? BindScalar(ConfigNode node, Type type, string path)
    {
        if (node is not ConfigScalar scalar)
        {
            Problem(path, $"expected {DescribeType(type)}, but got {Describe(node, path)}");
            return null;
        }

        var text = _interpolator.Expand(scalar.Value, _unset, out var interpolationError);
        if (interpolationError is not null)
        {
            Problem(path, interpolationError);
            return null;
        }

        if (type == typeof(string))
        {
            return text;
        }

        var trimmed = text.Trim();
        if (trimmed.Length == 0)
        {
            // An interpolated number or flag that came out empty counts as unset.
            return null;
        }

        object? result = null;
        if (type == typeof(bool))
        {
            result = trimmed.ToLowerInvariant() switch
            {
                "true" => true,
                "false" => false,
                _ => null,
            };
        }
        else if (type == typeof(int) && int.TryParse(trimmed, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i))
        {
            result = i;
        }
        else if (type == typeof(long) && long.TryParse(trimmed, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l))
        {
            result = l;
        }
        else if (type == typeof(double) && double.TryParse(trimmed, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d))
        {
            result = d;
        }
        else if (type == typeof(decimal) && decimal.TryParse(trimmed, NumberStyles.Float, CultureInfo.InvariantCulture, out var m))
        {
            result = m;
        }

        if (result is null)
        {
            Problem(path, $"expected {DescribeType(type)}, but got {Quote(text, path)}");
        }

        return result;
    }

    private void Problem(string path, string message) => _problems.Add(new ConfigProblem(path, message));

    private static string Join(string path, string key) => path.Length == 0 ? key : $"{path}.{key}";

    private static bool IsNull(ConfigNode node) => node is ConfigScalar { IsNull: true };

    private static string Describe(ConfigNode node, string path) => node switch
    {
        ConfigMapping => "a mapping",
        ConfigSequence => "a list",
        ConfigScalar s => Quote(s.Value, path),
        _ => "something else",
    };

    /// <summary>The value, quoted and shortened, for a message; hidden under keys that hold secrets.</summary>
    /// <remarks>Problems are printed by <c>config check</c> and logged by <c>serve</c>: a key put in the wrong
    /// place ("api_keys: sk-…" instead of a list) must not end up in a terminal or a log collector.</remarks>
    private static string Quote(string value, string path) => IsSecret(path) ? "a value (not shown: it may be a secret)" : $"'{Shorten(value)}'";

    private static bool IsSecret(string path) =>
        path.StartsWith("master_key", StringComparison.Ordinal) ||
        path.Contains(".api_keys", StringComparison.Ordinal) ||
        path.Contains(".headers", StringComparison.Ordinal) ||
        (path.StartsWith("webhooks.", StringComparison.Ordinal) && (path.Contains(".secret", StringComparison.Ordinal) || path.EndsWith(".key", StringComparison.Ordinal)));

    private static string DescribeType(Type type) => type switch
    {
        _ when type == typeof(string) => "a string",
        _ when type == typeof(bool) => "true or false",
        _ when type == typeof(int) || type == typeof(long) => "a whole number",
        _ => "a number",
    };

    private static string Shorten(string value) => value.Length <= 40 ? value : value[..40] + "…";

    /// <summary>For a key written one level too high (<c>max_body_bytes</c> at the top), where it belongs (<c>server.max_body_bytes</c>).</summary>
    private static string? NestedHome(string key, Dictionary<string, PropertyInfo> properties)
    {
        foreach (var (name, property) in properties)
        {
            var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            if (type.IsClass && type != typeof(string) && !type.IsGenericType && PropertiesOf(type).ContainsKey(key))
            {
                return $"{name}.{key}";
            }
        }

        return null;
    }

    /// <summary>The closest candidate within a small edit distance, for "did you mean".</summary>
    public static string? Suggest(string key, IEnumerable<string> candidates)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            var distance = Text.Levenshtein.Distance(key, candidate);
            if (distance < bestDistance)
            {
                bestDistance = distance;
                best = candidate;
            }
        }

        return best is not null && bestDistance <= Math.Max(2, key.Length / 3) ? best : null;
    }
}
